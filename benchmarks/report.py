"""Write benchmarks/RESULTS.md and its figures from benchmarks/results/*.json (nothing is typed by hand).

    python benchmarks/report.py

Figures: figures/bench_ssim_vs_time.png (validation SSIM against training time, ours and the reference
configuration) and figures/bench_throughput.png (training throughput per variant and device).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vqvae_lib.config import get_profile  # noqa: E402
from vqvae_lib.plotting import figure_metadata  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FIGURES = ROOT / "figures"
NOT_MEASURED = "not measured (no GPU was lent to the session that ran these benchmarks)"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def describe(m: dict) -> str:
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return f"{m['cpu']}, {m['cores']} cores{gpu}; torch {m['torch']}, Python {m['python']}"


def label(r: dict) -> str:
    """The model of a quality record, with its speed options when it has any; for ours, its reconstruction loss
    (records before 2026-12-06 have none: the profiles trained on the squared error then)."""
    options = [o for o, on in (("bf16", r.get("precision") == "bf16"), ("channels_last", r.get("channels_last"))) if on]
    if r["model"] == "ours":
        options.insert(0, r.get("recon_loss", "mse"))
    return r["model"] + (f" ({', '.join(options)})" if options else "")


def quality_records() -> list[dict]:
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    quality = (r for r in records if "eval" in r)
    return sorted(quality, key=lambda r: (r["data"], r["model"], r["train"]["train_seconds"], label(r)))


OLD_KAGGLE_SPLIT = ("validate part of the old 80/20 split, by file (also the slices training validated on; "
                    "neighbouring slices of one subject on both sides)")


def scored_on(r: dict) -> str:
    """Which held-out slices a quality record was scored on, and how that split was made."""
    ev = r["eval"]
    if "split_kind" in ev:
        return f"{ev['split']}, {ev['split_kind']} (leakage {ev.get('leakage_share_ssim_0.9', float('nan')):.0%})"
    return OLD_KAGGLE_SPLIT if r["data"] == "kaggle" else "test, by subject"


def short_cpu(m: dict) -> str:
    """The CPU of a record's machine in a few words ("AMD EPYC", "Intel Xeon")."""
    return m["cpu"].replace("(R)", "").replace(" Processor", "").replace("  ", " ").strip()


def quality_table(records: list[dict]) -> list[str]:
    rows = ["| data | model | training time | held-out slices | scored on | mean SSIM | brain SSIM | PSNR (dB) | "
            "codes used (of 512) | steps | train images/s | CPU | measured |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        tr, ev = r["train"], r["eval"]
        budget = f"{tr['train_seconds'] / 60:.0f} min" + (" (class profile)" if "class-budget" in r["name"] else "")
        brain = f"{ev['ssim_brain_mean']:.4f}" if "ssim_brain_mean" in ev else "-"
        rows.append(f"| {r['data']} | {label(r)} | {budget} | {ev['n_images']} | {scored_on(r)} | "
                    f"**{ev['ssim_mean']:.4f}** | {brain} | "
                    f"{ev['psnr_mean']:.2f} | {ev['active_codes']} | {tr['steps']} | {tr['images_per_second']:.0f} | "
                    f"{short_cpu(r['machine'])} | {r['date'][:10]} {r.get('commit') or ''} |")
    return rows


def ssim_figure(records: list[dict]) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, data in zip(axes, ("kaggle", "default")):
        for r in (r for r in records if r["data"] == data and "class-budget" not in r["name"]):
            minutes = [s / 60 for s, _ in r["curve"]]
            ssim = [v for _, v in r["curve"]]
            speed_options = r.get("precision") == "bf16" or r.get("channels_last")
            style, color = ("-^", "tab:orange") if speed_options else {
                "ours": ("-o", "tab:blue"), "reference": ("--s", "tab:green"), "misha": (":d", "tab:red")}[r["model"]]
            ax.plot(minutes, ssim, style, color=color, ms=3,
                    label=f"{label(r)}: held-out {r['eval']['ssim_mean']:.3f}")
        ax.set(title={"kaggle": "real OASIS-derived slices (kaggle)", "default": "built-in MNI152 slices"}[data],
               xlabel="training time (minutes, 2 CPU cores)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    axes[0].set_ylabel("validation SSIM (256 slices)")
    fig.suptitle("VQ-VAE reconstruction quality against training time, 128x128 -> 32x32 codes, K = 512")
    fig.tight_layout()
    path = FIGURES / "bench_ssim_vs_time.png"
    fig.savefig(path, dpi=110, metadata=figure_metadata("benchmark"))
    plt.close(fig)
    return path


def throughput_table(runs: list[dict]) -> list[str]:
    rows = ["| device | model | variant | processes x threads | batch per process | throughput | measured |",
            "|---|---|---|---|---|---|---|"]
    for run in runs:
        base = {r["model"]: r["rate"] for r in run["records"] if r["variant"] == "fp32"}
        for r in run["records"]:
            unit = "images/s" if r["model"] == "vqvae" else "code maps/s"
            gain = r["rate"] / base[r["model"]]
            spread = f" [{min(r['rates']):.0f}–{max(r['rates']):.0f}]" if len(r.get("rates", [])) > 1 else ""
            rows.append(f"| {run['device']} | {r['model']} | {r['variant']} | {r['processes']} x "
                        f"{r['threads_per_process']} | {r['batch_per_process']} | {r['rate']:.1f}{spread} {unit} "
                        f"({gain:.2f}x) | {run['date'][:10]} {run['commit']} |")
    if not any(run["device"].startswith("cuda") for run in runs):
        for model in ("vqvae", "prior"):
            for variant in ("one GPU, bf16", "torchrun, one process per GPU"):
                rows.append(f"| cuda | {model} | {variant} | | | {NOT_MEASURED} | |")
    return rows


def verdict(run: dict) -> list[str]:
    """What the throughput numbers decided, with the numbers themselves."""
    gain = {}
    for r in run["records"]:
        base = next(b["rate"] for b in run["records"] if b["model"] == r["model"] and b["variant"] == "fp32")
        gain[r["model"], r["variant"]] = 100 * (r["rate"] / base - 1)

    def g(model: str, variant: str) -> str:
        return f"{gain.get((model, variant), float('nan')):+.0f} %"
    return ["What we keep, from these numbers:", "",
            f"- **bf16 autocast** is the default on CUDA (`--precision auto`). On this CPU it gives "
            f"{g('vqvae', 'bf16')} (VQ-VAE) and {g('prior', 'bf16')} (prior), "
            f"{g('vqvae', 'bf16 + channels_last')} for the VQ-VAE together with channels_last, because this "
            "Xeon has AMX bf16 units; CPUs without bf16 units (most laptops) have nothing to gain from it (not "
            "measured here), so on a CPU it is an opt-in (`--precision bf16`).",
            f"- **channels_last** {g('vqvae', 'channels_last')} (VQ-VAE), {g('prior', 'channels_last')} (prior): an "
            "option (`--channels-last`), not a default, until it is measured on more machines (MPS, GPUs).",
            f"- **torch.compile** {g('vqvae', 'compile')} (VQ-VAE), {g('prior', 'compile')} (prior) in steady state, "
            "after compiling at the start of every run: not worth it for minutes-long CPU runs; an option "
            "(`--compile`) for long GPU runs.",
            f"- **torchrun** with 2 single-thread processes on 2 cores: {g('vqvae', 'torchrun x2')} (VQ-VAE), "
            f"{g('prior', 'torchrun x2')} (prior): one process already uses both cores. It is for several GPUs or "
            "nodes; its correctness is what the 2-process gloo test checks.", ""]


def throughput_figure(runs: list[dict]) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, model in zip(axes, ("vqvae", "prior")):
        labels, rates = [], []
        for run in runs:
            for r in run["records"]:
                if r["model"] == model:
                    labels.append(f"{run['device']}: {r['variant']}")
                    rates.append(r["rate"])
        ax.barh(labels[::-1], rates[::-1], color="tab:blue")
        for y, rate in enumerate(rates[::-1]):
            ax.text(rate, y, f" {rate:.0f}", va="center", fontsize=8)
        ax.set(title=f"{'VQ-VAE' if model == 'vqvae' else 'PixelCNN prior'} training, class profile",
               xlabel="images/s" if model == "vqvae" else "code maps/s")
        ax.set_xlim(0, max(rates) * 1.15)
    if not any(run["device"].startswith("cuda") for run in runs):
        fig.suptitle("Training throughput on " + describe(runs[0]["machine"]).split(";")[0] + " (GPU: not measured)")
    fig.tight_layout()
    path = FIGURES / "bench_throughput.png"
    fig.savefig(path, dpi=110, metadata=figure_metadata("benchmark"))
    plt.close(fig)
    return path


SAMPLE_MEASURES = [("nn_ssim_mean", "NN SSIM", ">= 0.70"), ("nn_ssim_share_above_0.6", "share > 0.6", ">= 90 %"),
                   ("border_tissue_samples", "border tissue", "0"), ("pairwise_ssim", "pairwise SSIM", "real +- 0.05"),
                   ("two_sample_accuracy", "two-sample acc.", "<= 0.80"), ("depth_agreement", "depth agreement",
                                                                          ">= 70 %")]


def sample_records() -> list[dict]:
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("sample-quality-*.json"))]
    return sorted(records, key=lambda r: (r["data"], r["vqvae"]["minutes"] + r["prior"]["minutes"], r["name"]))


def _value(summary: dict, key: str, record: dict | None = None) -> str:
    """One measure as a table cell; a two-sample score of the earlier, weaker critic (``weak_critic(record)``)
    carries a *."""
    from vqvae_lib.sample_quality import critic_mark

    value = summary.get(key)
    if value is None:
        return "-"
    if key in ("nn_ssim_share_above_0.6", "depth_agreement", "memorised_share"):
        return f"{value:.0%}"
    mark = "" if record is None else critic_mark(record, key)
    return f"{value:.0f}" if key == "border_tissue_samples" else f"{value:.3f}{mark}"


def plain_default(r: dict) -> bool:
    """A built-in-data record sampled at T = 1 from all codes with seed 0: the rows the figures compare."""
    s = r["sampling"]
    return (r["data"] == "default" and s["temperature"] == 1.0 and not s["top_k"] and not s.get("seed")
            and s.get("support", "none") == "none")


def at_class_budget(r: dict) -> bool:
    """A ``plain_default`` record of a 3-minute VQ-VAE and a 4-minute prior: the rows the levers compare."""
    return plain_default(r) and (r["vqvae"]["minutes"], r["prior"]["minutes"]) == (3.0, 4.0)


def sample_figure(records: list[dict]) -> Path:
    """The notebook-04 comparison (``plotting_prior.sample_quality_comparison``) of the variants that share one
    VQ-VAE and one budget on the built-in data, at temperature 1."""
    from vqvae_lib.plotting_prior import sample_quality_comparison

    same = [r for r in records if plain_default(r) and r["prior"]["minutes"] == 4.0
            and r["variant"] in ("position", "no-position", "prior-bf16", "coarse")]  # not the 20-minute stretch run
    fig = sample_quality_comparison(same, "built-in data, VQ-VAE 3 min + prior 4 min (one VQ-VAE): 256 samples each")
    path = FIGURES / "bench_sample_quality.png"
    fig.savefig(path, dpi=110, metadata=figure_metadata("benchmark"))
    return path


# how sample quality grows with the prior's training time: each prior on one 3-minute VQ-VAE (squared error) per data
# set, sampled at the class settings (T = 0.7, no top-k, support by depth), critics trained to the end; per prior and
# data set its variant and the tag of its runs (the built-in PixelCNN's priors are tagged: the second training of
# its 4- and 20-minute priors on that VQ-VAE, the one the masked-code table compares, and the same tag for the rest)
TIME_PRIORS = {"PixelCNN (the class prior)": {"default": ("position", "-rerun"), "kaggle": ("position", "")},
               "masked-code prior (`masked-c32`)": {"default": ("masked-c32", ""), "kaggle": ("masked-c32", "")}}
TIME_MINUTES = (4, 10, 20, 40)
TIME_DATA = {"default": "built-in data (by subject)", "kaggle": "kaggle slices (by file)"}


def time_curves() -> dict[str, dict[str, list[dict]]]:
    """data -> prior (``TIME_PRIORS``) -> its records at the ``TIME_MINUTES`` measured, in order; a data set's
    records must share one VQ-VAE (else the curves would mix decoders)."""
    curves: dict[str, dict[str, list[dict]]] = {}
    for data in TIME_DATA:
        for prior, by_data in TIME_PRIORS.items():
            variant, tag = by_data[data]
            runs = [r for m in TIME_MINUTES if (r := load(f"sample-quality-{data}-{variant}"
                                                          f"{'' if m == 4 else f'-3+{m}min'}-t0.7-depth{tag}"))]
            if runs:
                curves.setdefault(data, {})[prior] = runs
        every = [r for runs in curves.get(data, {}).values() for r in runs]
        if any(not same_vqvae(r, every[0]) for r in every):
            raise ValueError(f"the prior-time records of {data} lie on different VQ-VAEs: "
                             f"{sorted({r['vqvae']['steps'] for r in every})} steps")
    return curves


def time_figure(curves: dict[str, dict[str, list[dict]]]) -> Path:
    """NN SSIM, pairwise SSIM and two-sample accuracy against the prior's training minutes, one row per data set and
    one line per prior, with the real test slices (dashed), their reconstructions (dash-dot: a perfect prior through
    this decoder) and the generation issue's targets (dotted; stretch targets lighter)."""
    from matplotlib.figure import Figure

    panels = [("nn_ssim_mean", "nearest-neighbour SSIM", (0.70, 0.75)),
              ("pairwise_ssim", "pairwise SSIM (band: real +- 0.05)", ()),
              ("two_sample_accuracy", "two-sample accuracy (lower: better)", (0.80, 0.70))]
    fig = Figure(figsize=(11, 3.2 * len(curves)), layout="constrained")
    axes = fig.subplots(len(curves), len(panels), squeeze=False)
    for row, (data, priors) in zip(axes, curves.items()):
        first = next(iter(priors.values()))[0]
        for ax, (key, title, targets) in zip(row, panels):
            for (prior, runs), style in zip(priors.items(), ("o-", "s--")):
                ax.plot([r["prior"]["minutes"] for r in runs], [r["samples"][key] for r in runs], style,
                        label=prior.replace("`", ""))
            real, recon = first["real"][key], first["decoder"][key]
            ax.axhline(real, color="black", ls="--", lw=1, label="real test slices")
            ax.axhline(recon, color="grey", ls="-.", lw=1, label="their reconstructions")
            if key == "pairwise_ssim":
                ax.axhspan(real - 0.05, real + 0.05, color="black", alpha=0.06)
            for target, alpha in zip(targets, (1.0, 0.45)):
                ax.axhline(target, color="tab:red", ls=":", lw=1, alpha=alpha,
                           label="target (lighter: stretch)" if alpha == 1.0 else None)
            ax.set(xscale="log", xlabel="prior training minutes (class budget: 4)", title=f"{title}\n{TIME_DATA[data]}")
            ax.title.set_fontsize(9)
            ax.set_xticks(TIME_MINUTES, [f"{m:g}" for m in TIME_MINUTES])
            ax.minorticks_off()
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle("two priors on one 3-minute VQ-VAE per data set; 256 samples at T = 0.7, no top-k, support by depth",
                 fontsize=10)
    path = FIGURES / "bench_quality_vs_prior_time.png"
    fig.savefig(path, dpi=110, metadata=figure_metadata("benchmark"))
    return path


def time_rows(curves: dict[str, dict[str, list[dict]]]) -> list[str]:
    """One compact table of the prior-time curves (README): a row per data set, prior and budget, then per data set
    its real test slices and their reconstructions (a perfect prior through that VQ-VAE)."""
    rows = ["| data | prior | minutes (steps) | bits/code (test) | NN SSIM (>= 0.70; stretch 0.75) | pairwise SSIM "
            "(real +- 0.05) | two-sample acc. (<= 0.80; stretch 0.70) |", "|---" * 7 + "|"]
    for data, priors in curves.items():
        for prior, runs in priors.items():
            for r in runs:
                v = r["samples"]
                rows.append(f"| {TIME_DATA[data]} | {prior} | {r['prior']['minutes']:g} ({r['prior']['steps']}) | "
                            f"{r['prior']['test_bits_per_code']:.2f} | {v['nn_ssim_mean']:.3f} | "
                            f"{v['pairwise_ssim']:.3f} | {v['two_sample_accuracy']:.3f} |")
        first = next(iter(priors.values()))[0]
        for what, part in (("real test slices", "real"), ("their reconstructions", "decoder")):
            v = first[part]
            rows.append(f"| {TIME_DATA[data]} | {what} | | | {v['nn_ssim_mean']:.3f} | {v['pairwise_ssim']:.3f} | "
                        f"{v['two_sample_accuracy']:.3f} |")
    return rows


def time_lines(records: list[dict]) -> list[str]:
    """The prior-time section: figure, one table per data set and what the curves say, from the records."""
    curves = time_curves()
    if not curves:
        return []
    lines = ["### Sample quality against the prior's training time", "",
             "How far the method goes when only the prior's budget grows: the class PixelCNN and the masked-code "
             "prior (below), each trained for some of " + ", ".join(f"{m:g}" for m in TIME_MINUTES) + " minutes "
             "(the tables' rows) on one 3-minute VQ-VAE per data set (squared error, `BASE_VQVAE`; the class "
             "profile's own VQ-VAE trains on l1+grad since 2026-12-06), sampled at the class settings (T = 0.7, "
             "no top-k, support by depth; by position on kaggle), 256 samples, seed 0, one training each, critics "
             "trained to the end.", "",
             f"![Sample quality against the prior's training time](../figures/{time_figure(curves).name})", ""]
    for data, priors in curves.items():
        runs = [(prior.split(" (")[0] if "PixelCNN" in prior else prior, r)
                for prior, rs in priors.items() for r in rs]
        first = runs[0][1]
        lines += [f"{TIME_DATA[data].capitalize()}, VQ-VAE {first['vqvae']['steps']} steps (reconstructions "
                  f"{first['vqvae']['test']['ssim_mean']:.3f}):", "", *prior_rows(runs, first, recon=True), ""]
        said = []
        for prior, rs in priors.items():
            a, b = rs[0], rs[-1]
            if a is b:
                continue
            text = (f"the {prior.split(' (')[0]} goes from NN SSIM "
                    f"{a['samples']['nn_ssim_mean']:.3f} and two-sample accuracy "
                    f"{a['samples']['two_sample_accuracy']:.3f} after {a['prior']['minutes']:g} minutes "
                    f"({a['prior']['steps']} steps) to {b['samples']['nn_ssim_mean']:.3f} and "
                    f"{b['samples']['two_sample_accuracy']:.3f} after {b['prior']['minutes']:g} ({b['prior']['steps']} "
                    "steps)")
            c, d = rs[-2], rs[-1]
            doublings = math.log2(d["prior"]["minutes"] / c["prior"]["minutes"])
            per = (c["samples"]["two_sample_accuracy"] - d["samples"]["two_sample_accuracy"]) / doublings
            gap = d["samples"]["two_sample_accuracy"] - 0.80
            if per > 0 and gap > 0:
                more = gap / per                                          # doublings of the minutes still needed
                text += (f"; between {c['prior']['minutes']:g} and {d['prior']['minutes']:g} minutes its critic falls "
                         f"{per:.3f} per doubling of the minutes, and at that rate 0.80 lies {more:.0f} more doublings "
                         + (f"away (about {d['prior']['minutes'] * 2 ** more / 60:.0f} CPU hours; an extrapolation, "
                            "not a measurement)" if more <= 10 else "away: the curve has flattened"))
            elif gap > 0:
                text += (f"; between {c['prior']['minutes']:g} and {d['prior']['minutes']:g} minutes its critic no "
                         "longer falls")
            said.append(text)
        recon = first["decoder"]["two_sample_accuracy"]
        lines += [f"{TIME_DATA[data].capitalize()}: " + "; ".join(said) + f". A perfect prior through this VQ-VAE "
                  f"(its reconstructions of the real test slices) scores two-sample accuracy {recon:.3f}"
                  + (", above the 0.80 bar: on this decoder no prior can meet it." if recon > 0.80 else "."), ""]
    earlier = sorted((r for r in records if plain_default(r) and r["variant"] == "position"),
                     key=lambda r: r["prior"]["minutes"])
    if len(earlier) > 1:
        lines += ["Until 2026-12-06 this section's figure showed the class prior on another VQ-VAE at "
                  + ", ".join(f"{r['prior']['minutes']:g}" for r in earlier) + " minutes, sampled at T = 1 from all "
                  "codes and scored by the earlier critic (*); those records stay in the table of every record "
                  "(variant `position`).", ""]
    return lines + ["Commands: `python benchmarks/sample_quality.py --data D --variant position|masked-c32 "
                    "--prior-minutes M --temperature 0.7 --support depth` (on the built-in data the PixelCNN with "
                    "`--tag rerun`).", ""]


# the levers measured on one 3-minute VQ-VAE (built-in data) with a 4-minute prior, T = 1, all codes: what each
# changes against the class profile's prior (variant "position": the same settings, same VQ-VAE)
LEVERS = {
    "position": "none: the class profile's prior (the reference row)",
    "no-position": "no row / column biases before the gates",
    "prior-b4": "batch 4 instead of 8 (twice the steps)",
    "prior-bf16": "bf16 autocast for the prior (this CPU has bf16 units)",
    "prior-ema": "an exponential moving average of the weights (decay 0.99) is what is kept",
    "prior-init": "starts from the codebook's principal components and the code histogram",
    "prior-k3": "3 x 3 instead of 5 x 5 gated layers",
    "prior-k3-l20": "3 x 3 gated layers, 20 instead of 10",
    "coarse": "coarse-to-fine: a 16 x 16 map of 64 coarse codes first, then the codes given it",
    "code-noise": "its own VQ-VAE, trained decoding 10 % of positions from another position's code",
    "transformer": "a causal transformer instead of the PixelCNN (width 64, 4 blocks, 2 heads; same training)",
}


def lever_rows(records: list[dict]) -> list[str]:
    """One row per lever (``LEVERS``): prior steps and bits, the sample measures, and the reconstruction."""
    rows = ["| lever | what it changes | prior steps | bits/code (test) | NN SSIM | share > 0.6 | border | "
            "two-sample acc. | depth | recon SSIM |", "|---" * 10 + "|"]
    chosen = {r["variant"]: r for r in records if at_class_budget(r) and r["variant"] in LEVERS}
    for variant, what in LEVERS.items():
        if (r := chosen.get(variant)) is None:
            continue
        cells = " | ".join(_value(r["samples"], k, r) for k in ("nn_ssim_mean", "nn_ssim_share_above_0.6",
                                                              "border_tissue_samples", "two_sample_accuracy",
                                                              "depth_agreement"))
        rows.append(f"| `{variant}` | {what} | {r['prior']['steps']} | {r['prior']['test_bits_per_code']:.2f} | "
                    f"{cells} | {r['vqvae']['test']['ssim_mean']:.3f} |")
    return rows


SAME_COST = ("position", "prior-ema", "prior-init", "code-noise")  # priors whose steps cost the same


STRETCH = "sample-quality-default-prior-c48-3+40min-t0.8-k32-depth"   # the stretch budget, scored by the new critic


def stretch_lines() -> list[str]:
    """The stretch budget (3 + 40 minutes) scored with the critic trained to the end, from its two seeds' records."""
    runs = [r for r in (load(STRETCH), load(STRETCH + "-seed1")) if r]
    if not runs:
        return []
    first, s = runs[0], [r["samples"] for r in runs]

    def both(key: str, fmt: str = ".3f", scale: float = 1.0) -> str:
        return " / ".join(f"{v[key] * scale:{fmt}}" for v in s)

    vq, prior = first["vqvae"], first["prior"]
    base = load(TOP_K + "-k32-depth")   # the class prior (32 channels, 4 minutes) on the same VQ-VAE, same settings
    against = ""
    if base is not None and base["vqvae"]["steps"] == vq["steps"]:
        b, bp = base["samples"], base["prior"]
        gain = sorted(v["nn_ssim_mean"] - b["nn_ssim_mean"] for v in s)
        drop = sorted(b["two_sample_accuracy"] - v["two_sample_accuracy"] for v in s)
        against = (f" On the same VQ-VAE, with the same sampling settings, the class-width prior after "
                   f"{bp['minutes']:g} minutes ({bp['steps']} steps, {bp['test_bits_per_code']:.2f} bits per code; "
                   f"the top-k table below) scored NN SSIM {b['nn_ssim_mean']:.3f} and two-sample accuracy "
                   f"{b['two_sample_accuracy']:.3f}: {prior['minutes'] / bp['minutes']:.0f} times the minutes "
                   f"({prior['steps'] / bp['steps']:.1f} times the steps) of a "
                   f"{prior['config']['channels'] / bp['config']['channels']:g} times wider prior gain "
                   f"{gain[0]:.3f}-{gain[-1]:.3f} NN SSIM and lower the critic by {drop[0]:.3f}-{drop[-1]:.3f}.")
    return ["A wider prior was tried for the stretch budget too (critic trained to the end), on another "
            f"{vq['minutes']:g}-minute VQ-VAE ({vq['steps']} steps, reconstructions {vq['test']['ssim_mean']:.3f}) "
            f"with a prior of its own (`prior-c48`: {prior['config']['channels']} channels instead of 32, "
            f"{prior['config']['depth_buckets']} depth bands, {prior['minutes']:g} minutes, {prior['steps']} steps, "
            f"test bits per code {prior['test_bits_per_code']:.2f}; training loss at the end "
            f"{prior['train_bits_per_code']:.2f}, validation {prior['val_bits_per_code']:.2f}), sampled with the "
            f"class settings of the time (T = {first['sampling']['temperature']:g}, top-k "
            f"{first['sampling']['top_k']}, support "
            f"by {first['sampling']['support']}), {len(runs)} sampling seeds: NN SSIM {both('nn_ssim_mean')}, "
            f"share above 0.6 {both('nn_ssim_share_above_0.6', '.0f', 100)} %, border tissue "
            f"{both('border_tissue_samples', '.0f')}, copies {both('memorised_share', '.0f', 100)} %, pairwise SSIM "
            f"{both('pairwise_ssim')} (real {first['real']['pairwise_ssim']:.3f}), depth agreement "
            f"{both('depth_agreement', '.0f', 100)} % (real {first['real']['depth_agreement'] * 100:.0f} %), "
            f"two-sample accuracy {both('two_sample_accuracy')} (real vs real "
            f"{first['real']['two_sample_accuracy']:.3f}; the same real slices' reconstructions "
            f"{first['decoder']['two_sample_accuracy']:.3f}). The samples (grids in `build/bench/`, looked at when "
            "they were made) show ventricles, midline, sulci and grey/white contrast at every depth band, with "
            "blurred, blotchy texture; the lowest bands (cerebellum, temporal lobes) are the least regular." + against
            + " The stretch targets (NN SSIM 0.75, two-sample accuracy 0.70) are not reached, and the second is lower "
            f"than the {first['decoder']['two_sample_accuracy']:.2f} that even a perfect prior would score through "
            "this VQ-VAE (its reconstructions).", "",
            "Command: `python benchmarks/sample_quality.py --data default --variant prior-c48 --prior-minutes 40 "
            "--temperature 0.8 --top-k 32 --support depth [--seed 1]`.", ""]


TOP_K = "sample-quality-default-position-t0.8"  # + "-k16-depth", ...: top-k scored by the critic trained to the end


def top_k_lines() -> list[str]:
    """Top-k at the class settings of the time (T = 0.8, support by depth band) on one prior, one row per k, from the
    records."""
    runs = [(k, load(f"{TOP_K}{'-k' + str(k) if k else ''}-depth")) for k in (16, 32, 64, None)]
    runs = [(k, r) for k, r in runs if r]
    if len(runs) < 2:
        return []
    first = runs[0][1]
    rows = ["| top-k | NN SSIM | share > 0.6 | border | pairwise SSIM | intensity W1 | depth agreement | "
            "two-sample acc. (three critics) |", "|---|---|---|---|---|---|---|---|"]

    def row(label: str, v: dict, samples: bool = True) -> str:
        critics = v["two_sample_accuracy_runs"] if samples else None
        return (f"| {label} | {v['nn_ssim_mean']:.3f} | {v['nn_ssim_share_above_0.6'] * 100:.1f} % | "
                f"{v['border_tissue_samples']:.0f} | {v['pairwise_ssim']:.3f} | "
                + (f"{v['intensity_w1']:.3f} " if samples else "") + f"| {v['depth_agreement'] * 100:.0f} % | "
                f"{v['two_sample_accuracy']:.3f}"
                + (" (" + ", ".join(f"{x:.3f}" for x in critics) + ")" if critics else "")
                + " |")
    rows += [row(str(k or "none"), r["samples"]) for k, r in runs]
    rows.append(row("real test slices", first["real"], samples=False))
    return ["### Top-k, measured again with the critic trained to the end", "",
            "The class profile's top-k 32 was chosen at T = 1 without a support, with the earlier critic. Here one "
            f"prior with the class settings (variant `position`: {first['vqvae']['steps']} VQ-VAE steps, "
            f"{first['prior']['steps']} prior steps, {first['prior']['test_bits_per_code']:.2f} bits per code) is "
            f"sampled at the class settings of the time (T = {first['sampling']['temperature']:g}, support by "
            f"{first['sampling']['support']}, 256 samples, seed {first['sampling']['seed']}) with each top-k:", "",
            *rows, "", top_k_verdict([r["samples"] for _, r in runs]), "",
            "Command: `python benchmarks/sample_quality.py --data default --variant position --temperature 0.8 "
            "--support depth [--top-k K]`.", ""]


# top-k 32 against none at T = 0.7 with the support, on the class settings' trainings: (data, variant, tag, what)
TOP_K_CLASS = [("default", "class", "", "the notebooks' prior, seed 0"),
               ("default", "class", "-seed1", "the notebooks' prior, seed 1"),
               ("default", "l1grad", "", "the benchmark's first l1+grad prior"),
               ("default", "l1grad", "-rerun", "the benchmark's second l1+grad prior"),
               ("kaggle", "class", "", "the kaggle class prior, seed 0"),
               ("kaggle", "class", "-seed1", "the kaggle class prior, seed 1"),
               ("kaggle", "l1grad", "", "the benchmark's kaggle l1+grad prior")]


def top_k_class_verdict(pairs: list[tuple[str, dict | None, dict]]) -> str:
    """What the table says, from its records: NN SSIM, kaggle diversity, intensities and the critic, both ways."""
    both = [(k32["samples"], none["samples"], none) for _, k32, none in pairs if k32]
    if not both:
        return "No training was scored both ways yet."

    def span(values: list[float]) -> str:
        return f"{min(values):.3f}-{max(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"

    nn_gap = max(abs(round(a["nn_ssim_mean"], 3) - round(b["nn_ssim_mean"], 3)) for a, b, _ in both)  # as printed
    kaggle = [(a, b, r) for a, b, r in both if r["data"] == "kaggle"]
    bound = (" On kaggle pairwise SSIM " + span([b["pairwise_ssim"] for _, b, _ in kaggle]) + " without top-k against "
             + span([a["pairwise_ssim"] for a, _, _ in kaggle]) + " with it (bound: real "
             + f"{kaggle[0][2]['real']['pairwise_ssim']:.3f} + 0.05)." if kaggle else "")
    w1_lower = sum(b["intensity_w1"] < a["intensity_w1"] for a, b, _ in both)
    return (f"Without top-k the samples are as close to real slices (NN SSIM within {nn_gap:.3f} either way) and more "
            f"diverse (lower pairwise SSIM in {sum(b['pairwise_ssim'] < a['pairwise_ssim'] for a, b, _ in both)} of "
            f"{len(both)} pairs).{bound} Their intensities lie nearer the real ones (lower W1 in {w1_lower} of "
            f"{len(both)}), and the critic finds them less often in "
            f"{sum(b['two_sample_accuracy'] < a['two_sample_accuracy'] for a, b, _ in both)} of {len(both)} ("
            + span([b["two_sample_accuracy"] for _, b, _ in both]) + " against "
            + span([a["two_sample_accuracy"] for a, _, _ in both]) + "; still far above 0.80). So the class profile "
            "draws from every code the support allows since 2026-12-06.")


def top_k_class_lines() -> list[str]:
    """Top-k 32 against none at T = 0.7 with the support, on every training of the class settings scored both ways:
    what moved the class profile to no top-k on 2026-12-06."""
    with_k, without_k = sampling_suffix(0.7, EARLIER_TOP_K, "depth"), sampling_suffix(0.7, None, "depth")
    pairs = [(what, load(f"sample-quality-{data}-{variant}-{with_k}{tag}"),
              load(f"sample-quality-{data}-{variant}-{without_k}{tag}")) for data, variant, tag, what in TOP_K_CLASS]
    pairs = [(what, k32, none) for what, k32, none in pairs if none]
    if not pairs:
        return []

    def cell(r: dict | None, key: str, fmt: str = ".3f") -> str:
        return format(r["samples"][key], fmt) if r and r["samples"].get(key) is not None else "-"

    rows = ["| data | prior (VQ-VAE + prior steps) | NN SSIM: top-k 32 / none | pairwise SSIM: top-k 32 / none "
            "(real) | two-sample acc.: top-k 32 / none | intensity W1: top-k 32 / none | depth agreement: top-k 32 / "
            "none |", "|---|---|---|---|---|---|---|"]
    for what, k32, none in pairs:
        depth = (f"{cell(k32, 'depth_agreement', '.0%')} / {cell(none, 'depth_agreement', '.0%')}"
                 if none["samples"].get("depth_agreement") is not None else "-")
        data = {"default": "built-in (by subject)", "kaggle": "kaggle (by file)"}[none["data"]]
        rows.append(f"| {data} | {what} ({none['vqvae']['steps']} + {none['prior']['steps']}) | "
                    f"{cell(k32, 'nn_ssim_mean')} / {cell(none, 'nn_ssim_mean')} | {cell(k32, 'pairwise_ssim')} / "
                    f"{cell(none, 'pairwise_ssim')} ({none['real']['pairwise_ssim']:.3f}) | "
                    f"{cell(k32, 'two_sample_accuracy')} / {cell(none, 'two_sample_accuracy')} | "
                    f"{cell(k32, 'intensity_w1')} / {cell(none, 'intensity_w1')} | {depth} |")
    return ["### Top-k at T = 0.7", "",
            "The class profile sampled with top-k 32 until 2026-12-06, a choice made at T = 1 without a support. At "
            "the profile's T = 0.7 with the support by depth (by position on kaggle), each training of the class "
            "settings sampled both ways (256 samples; the two-sample score: the mean of three critics trained to "
            "the end; a dash: not measured):", "", *rows, "",
            top_k_class_verdict(pairs), "",
            "Commands: `python benchmarks/sample_quality.py --data D --variant class|l1grad --temperature 0.7 "
            "--support depth [--top-k 32] [--seed 1] [--tag rerun]`.", ""]


MASKED = {"masked-t0.8-k32-depth": "`masked`: width 64", "masked-depth": "`masked`: width 64",
          "masked-c32-t0.8-k32-depth": "`masked-c32`: width 32",
          "masked-c32-t0.8-k32-depth-rerun": "`masked-c32`: width 32, trained again",
          "masked-c32-l1-t0.8-k32-depth": "`masked-c32-l1`: width 32, 1 block per level",
          "masked-c32-depth-steps32-noise20": "`masked-c32`: width 32, 32 steps, confidence noise 20",
          "masked-c32-3+20min-t0.8-k32-depth": "`masked-c32`: width 32",
          "masked-c32-3+40min-t0.8-k32-depth": "`masked-c32`: width 32"}
PIXELCNN_SAME_VQ = {"position-t0.8-k32-depth-rerun": "the class PixelCNN (`position`)",
                    "position-depth-rerun": "the class PixelCNN (`position`)",
                    "position-3+20min-t0.8-k32-depth-rerun": "the class PixelCNN (`position`)"}


CRITIC_SPREAD = 0.016   # the most by which one setting's three critics differed (README, class profile)


def shortfalls(a: dict, b: dict, real_pairwise: float | None = None) -> list[str]:
    """What keeps samples ``a`` from beating ``b``, in words (empty: ``a`` wins): NN SSIM must be higher by more
    than two trainings of one setting differ (0.004), the critic must tell them from real slices less often by more
    than one setting's three critics differ (``CRITIC_SPREAD``), and, given the real slices' pairwise SSIM, their
    diversity must be no further from it than ``b``'s (+ 0.004)."""
    reasons = []
    if a["nn_ssim_mean"] <= b["nn_ssim_mean"] + 0.004:
        reasons.append("no higher NN SSIM")
    if a["two_sample_accuracy"] >= b["two_sample_accuracy"] - CRITIC_SPREAD:
        reasons.append("a critic within the critics' spread or worse")
    if real_pairwise is not None and (abs(a["pairwise_ssim"] - real_pairwise)
                                      > abs(b["pairwise_ssim"] - real_pairwise) + 0.004):
        reasons.append("less real diversity")
    return reasons


def wins_over(a: dict, b: dict, real_pairwise: float | None = None) -> bool:
    """Samples ``a`` beat ``b`` (``shortfalls``: none)."""
    return not shortfalls(a, b, real_pairwise)


def same_vqvae(a: dict, b: dict) -> bool:
    """Two records over the codes of the same trained VQ-VAE: its steps and test scores agree."""
    return all(a["vqvae"][key] == b["vqvae"][key] for key in ("steps", "test"))


KAGGLE_SAME_VQ = {"position-t0.8-k32-depth": "the class PixelCNN (`position`)",
                  "masked-c32-t0.8-k32-depth": "`masked-c32`: width 32",
                  "position-3+20min-t0.8-k32-depth": "the class PixelCNN (`position`)",
                  "masked-c32-3+20min-t0.8-k32-depth": "`masked-c32`: width 32"}


def why_not(a: dict, b: dict, real: dict) -> str:
    """Why samples ``a`` do not beat ``b``, as the rest of a sentence: their ``shortfalls``, and whether both lie
    outside the diversity bound (real pairwise SSIM +- 0.05)."""
    outside = all(abs(x["pairwise_ssim"] - real["pairwise_ssim"]) > 0.05 for x in (a, b))
    return (f" ({', '.join(shortfalls(a, b, real['pairwise_ssim']))})"
            + ("; both are less diverse than real slices beyond the bound." if outside else "."))


# the VQ-VAE's reconstruction loss, each with a 4-minute class prior: record name -> what
DECODER_LOSS = {
    "sample-quality-default-position-t0.8-k32-depth-rerun": "built-in: MSE (the paper's; the class profile's until "
                                                            "2026-12-06), 3 min",
    "sample-quality-default-l1grad-t0.8-k32-depth": "built-in: L1 of pixels and of their differences (`l1grad`), 3 min",
    "sample-quality-default-class-t0.8-k32-depth": "built-in: the same loss, the class profile's since 2026-12-06 "
                                                   "(the notebooks' run, `class`), 3 min",
    "sample-quality-kaggle-position-t0.8-k32-depth": "kaggle: MSE (the paper's; the class profile's until "
                                                     "2026-12-06), 3 min",
    "sample-quality-kaggle-l1grad-t0.8-k32-depth": "kaggle: L1 of pixels and of their differences (`l1grad`), 3 min",
    "sample-quality-kaggle-class-t0.8-k32-depth": "kaggle: the same loss, the class profile's since 2026-12-06 "
                                                  "(`class`), 3 min",
    "sample-quality-kaggle-position-10+4min-t0.8-k32-depth": "kaggle: MSE, 10 min (beyond the class budget)"}


def decoder_loss_lines() -> list[str]:
    """The VQ-VAE's reconstruction loss (``VQVAEConfig.recon_loss``) against how often the critic tells its
    reconstructions, and a 4-minute prior's samples, from real slices: from the records."""
    runs = [(what, r) for name, what in DECODER_LOSS.items() if (r := load(name))]
    if not any(r["vqvae"]["config"].get("recon_loss") == "l1+grad" for _, r in runs):
        return []
    rows = ["| data: VQ-VAE loss, training time | VQ-VAE steps | recon SSIM / brain SSIM / PSNR (test) | "
            "reconstructions: two-sample acc. | reconstructions: intensity W1 | prior steps (4 min) | samples: NN SSIM "
            "| samples: pairwise SSIM | samples: two-sample acc. |", "|---" * 9 + "|"]
    for what, r in runs:
        t, d, v = r["vqvae"]["test"], r["decoder"], r["samples"]
        rows.append(f"| {what} | {r['vqvae']['steps']} | {t['ssim_mean']:.3f} / {t['ssim_brain_mean']:.3f} / "
                    f"{t['psnr_mean']:.2f} | {d['two_sample_accuracy']:.3f} | {d['intensity_w1']:.4f} | "
                    f"{r['prior']['steps']} | {v['nn_ssim_mean']:.3f} | {v['pairwise_ssim']:.3f} | "
                    f"{v['two_sample_accuracy']:.3f} |")
    for data in dict.fromkeys(r["data"] for _, r in runs):
        real = next(r["real"] for _, r in runs if r["data"] == data)
        rows.append(f"| {data}: real test slices | | | {real['two_sample_accuracy']:.3f} (real against real) | "
                    f"{real['intensity_w1']:.4f} | | {real['nn_ssim_mean']:.3f} | {real['pairwise_ssim']:.3f} | |")
    return ["### A sharper decoder: the VQ-VAE's reconstruction loss", "",
            "The critic tells even the reconstructions of a 3-minute VQ-VAE from real slices more often than the "
            "0.80 bar on the kaggle slices: a squared error lets small errors through cheaply, and the decoder blurs "
            "every edge a little. `VQVAEConfig.recon_loss = \"l1+grad\"` (`vqvae.reconstruction_loss`) trains on the "
            "mean absolute error of the pixels plus that of their vertical and horizontal differences instead. Each "
            "VQ-VAE of its own (3 minutes, the class budget, unless the row says otherwise) with its own 4-minute "
            "class prior, the class sampling settings until 2026-12-06 (T = 0.8, top-k 32, support by depth; by "
            "position on kaggle), 256 "
            "samples, seed 0, one training each; built-in data split by subject, kaggle by file. The reconstructions "
            "are those of the real test slices, scored like samples (what a perfect prior would reach through that "
            "decoder). Since 2026-12-06 the class profile trains on this loss (notebook 02 shows why a squared error "
            "blurs); the benchmark's other variants keep the squared-error VQ-VAE (`BASE_VQVAE` in "
            "benchmarks/sample_quality.py), so that every earlier record's command still gives that record:", "",
            *rows, "",
            "Commands: `python benchmarks/sample_quality.py --data D --variant l1grad --temperature 0.8 --top-k 32 "
            "--support depth` (and `--variant position [--tag rerun]`, `--vqvae-minutes 10`).", ""]


def kaggle_masked_lines() -> list[str]:
    """The masked-code prior against the class PixelCNN on the kaggle slices, both on one VQ-VAE, from the records."""
    runs = [(what, r) for key, what in KAGGLE_SAME_VQ.items() if (r := load(f"sample-quality-kaggle-{key}"))]
    if len(runs) < 2:
        return []
    first = runs[0][1]
    runs = [(w, r) for w, r in runs if same_vqvae(r, first)]
    verdicts = []
    for minutes in sorted({r["prior"]["minutes"] for _, r in runs}):
        pair = {r["variant"]: r for _, r in runs if r["prior"]["minutes"] == minutes}
        if {"position", "masked-c32"} <= set(pair):
            m, p = pair["masked-c32"]["samples"], pair["position"]["samples"]
            verdicts.append(
                f"After {minutes:g} minutes ({pair['masked-c32']['prior']['steps']} masked steps, "
                f"{pair['position']['prior']['steps']} PixelCNN steps) the masked prior scores NN SSIM "
                f"{m['nn_ssim_mean']:.3f} against {p['nn_ssim_mean']:.3f}, pairwise SSIM {m['pairwise_ssim']:.3f} "
                f"against {p['pairwise_ssim']:.3f} (the bound: real {first['real']['pairwise_ssim']:.3f} + 0.05) and "
                f"two-sample accuracy {m['two_sample_accuracy']:.3f} against {p['two_sample_accuracy']:.3f}: "
                + ("it wins." if wins_over(m, p, first["real"]["pairwise_ssim"])
                   else "it does not win" + why_not(m, p, first["real"])))
    return ["### The masked-code prior on the kaggle slices", "",
            "The same comparison on the real OASIS-derived slices (`--data kaggle`), every prior over the codes of one "
            f"{first['vqvae']['minutes']:g}-minute VQ-VAE ({first['vqvae']['steps']} steps, reconstructions "
            f"{first['vqvae']['test']['ssim_mean']:.3f}), class sampling settings of the time (T = 0.8, top-k 32, "
            "support by "
            "position, which `--support depth` means on these folders: their labels are dementia classes), 256 "
            "samples, seed 0, one training each. The split is by "
            "file, so neighbouring slices of one subject sit in training and test, and the real ceiling (NN SSIM "
            f"{first['real']['nn_ssim_mean']:.3f}) is inflated; the reconstructions' row is what a perfect prior "
            "would reach through this VQ-VAE:", "",
            *prior_rows(runs, first, recon=True), "", " ".join(verdicts), "",
            "Commands: `python benchmarks/sample_quality.py --data kaggle --variant masked-c32 --temperature 0.8 "
            "--top-k 32 --support depth` and `--variant position` (the same settings), each also with "
            "`--prior-minutes 20`.", ""]


def prior_rows(runs: list[tuple[str, dict]], first: dict, recon: bool = False) -> list[str]:
    """A markdown table of priors on one VQ-VAE: one row per (name, record), then the real test slices of ``first``
    (and, with ``recon``, their reconstructions: a perfect prior's ceiling) scored the same way."""
    def percent(value) -> str:
        return "-" if value is None else f"{value * 100:.0f} %"

    rows = ["| prior | sampling | minutes | prior steps | bits/code (test) | NN SSIM | share > 0.6 | pairwise SSIM | "
            "intensity W1 | depth agreement | two-sample acc. | 16 samples (s) |", "|---" * 12 + "|"]
    for what, r in runs:
        v, s = r["samples"], r["sampling"]
        setting = f"T = {s['temperature']:g}" + (f", top-k {s['top_k']}" if s["top_k"] else "")
        rows.append(f"| {what} | {setting} | {r['prior']['minutes']:g} | {r['prior']['steps']} | "
                    f"{r['prior']['test_bits_per_code']:.2f} | "
                    f"{v['nn_ssim_mean']:.3f} | {percent(v['nn_ssim_share_above_0.6'])} | {v['pairwise_ssim']:.3f} | "
                    f"{v['intensity_w1']:.3f} | {percent(v.get('depth_agreement'))} | {v['two_sample_accuracy']:.3f} | "
                    f"{s['seconds_for_16']:.1f} |")
    for what, part in [("real test slices", "real")] + ([("their reconstructions", "decoder")] if recon else []):
        real = first[part]
        rows.append(f"| {what} | | | | | {real['nn_ssim_mean']:.3f} | {percent(real['nn_ssim_share_above_0.6'])} | "
                    f"{real['pairwise_ssim']:.3f} | {real['intensity_w1']:.3f} | "
                    f"{percent(real.get('depth_agreement'))} | "
                    f"{real['two_sample_accuracy']:.3f} | |")
    return rows


def masked_lines() -> list[str]:
    """The masked-code prior (MaskGIT-style) at the class budget, against the class PixelCNN trained on the same
    VQ-VAE, from the records."""
    runs = [(what, r) for key, what in MASKED.items() if (r := load(f"sample-quality-default-{key}"))]
    if not runs:
        return []
    first = runs[0][1]
    pixelcnn = [(what, r) for key, what in PIXELCNN_SAME_VQ.items() if (r := load(f"sample-quality-default-{key}"))]
    pixelcnn = [(w, r) for w, r in pixelcnn if same_vqvae(r, first)]
    runs += pixelcnn
    base = pixelcnn[0][1] if pixelcnn else None
    rows, real = prior_rows(runs, first), first["real"]
    minutes = first["prior"]["minutes"]
    best = max((r for w, r in runs if r["variant"].startswith("masked") and r["prior"]["minutes"] == minutes),
               key=lambda r: r["samples"]["nn_ssim_mean"])
    verdict = ""
    if base is not None:
        b, p = best["samples"], base["samples"]
        wins = wins_over(b, p, real["pairwise_ssim"])
        verdict = (f" The best {minutes:g}-minute masked row (`{best['variant']}`, {best['prior']['steps']} steps) "
                   f"scores NN SSIM "
                   f"{b['nn_ssim_mean']:.3f} and two-sample accuracy {b['two_sample_accuracy']:.3f} against the "
                   f"PixelCNN's {p['nn_ssim_mean']:.3f} and {p['two_sample_accuracy']:.3f}, intensity W1 "
                   f"{b['intensity_w1']:.3f} against {p['intensity_w1']:.3f}: "
                   + ("it wins at this budget." if wins else "at this budget it does not beat the PixelCNN, which "
                      "the course keeps."))
    untruncated = [r for _, r in runs if r["sampling"]["temperature"] == 1 and not r["sampling"]["top_k"]]
    if untruncated and base is not None:
        v = [r["samples"] for r in untruncated]
        verdict += (f" Sampled without truncation (T = 1, no top-k; for the masked prior also a nearly random order, "
                    f"confidence noise 20 over 32 steps), samples come closer to the real intensities (W1 "
                    f"{min(x['intensity_w1'] for x in v):.3f}-{max(x['intensity_w1'] for x in v):.3f}) and diversity "
                    f"(pairwise {min(x['pairwise_ssim'] for x in v):.3f}-{max(x['pairwise_ssim'] for x in v):.3f}), "
                    f"but NN SSIM falls to {min(x['nn_ssim_mean'] for x in v):.3f}-"
                    f"{max(x['nn_ssim_mean'] for x in v):.3f} and the critic still tells them from real slices "
                    f"({min(x['two_sample_accuracy'] for x in v):.3f}-{max(x['two_sample_accuracy'] for x in v):.3f}): "
                    "at this budget none of these settings moves the critic. A perfect prior would "
                    f"score {base['decoder']['two_sample_accuracy']:.3f} through this VQ-VAE (its reconstructions of "
                    "the real test slices).")
    again = [r for key in ("masked-c32-t0.8-k32-depth", "masked-c32-t0.8-k32-depth-rerun")
             if (r := load(f"sample-quality-default-{key}"))]
    if len(again) == 2:
        a, b = (r["samples"] for r in again)
        verdict += (f" Two trainings of `masked-c32` with the same settings got {again[0]['prior']['steps']} and "
                    f"{again[1]['prior']['steps']} steps in their {minutes:g} minutes (the budget becomes a step count "
                    f"from a short timing probe at the start) and score NN SSIM {a['nn_ssim_mean']:.3f} and "
                    f"{b['nn_ssim_mean']:.3f}, two-sample accuracy {a['two_sample_accuracy']:.3f} and "
                    f"{b['two_sample_accuracy']:.3f}: differences of that size between rows are noise.")
    longer = [r for _, r in runs if r["prior"]["minutes"] > minutes and r["sampling"]["top_k"]]
    masked_long = [r for r in longer if r["variant"].startswith("masked")]
    pixelcnn_long = [r for r in longer if not r["variant"].startswith("masked")]
    if masked_long and pixelcnn_long:
        m, p = masked_long[0], pixelcnn_long[0]
        verdict += (f" Trained {m['prior']['minutes']:g} minutes instead of {minutes:g} (masked {m['prior']['steps']} "
                    f"steps, PixelCNN {p['prior']['steps']}), the masked prior reaches NN SSIM "
                    f"{m['samples']['nn_ssim_mean']:.3f} and two-sample accuracy "
                    f"{m['samples']['two_sample_accuracy']:.3f}, the PixelCNN {p['samples']['nn_ssim_mean']:.3f} and "
                    f"{p['samples']['two_sample_accuracy']:.3f}"
                    + (f" (mirror symmetry {m['samples']['mirror_symmetry']:.3f} and "
                       f"{p['samples']['mirror_symmetry']:.3f}, real {p['real']['mirror_symmetry']:.3f})"
                       if "mirror_symmetry" in p["samples"] and "mirror_symmetry" in m["samples"] else "")
                    + (": with more training time the masked prior wins; its bidirectional context pays off once it "
                       "has the steps to learn it." if wins_over(m["samples"], p["samples"], real["pairwise_ssim"])
                       else ": it does not win there either."))
        if len(masked_long) > 1:
            last = masked_long[-1]["samples"]
            verdict += (f" Trained {masked_long[-1]['prior']['minutes']:g} minutes "
                        f"({masked_long[-1]['prior']['steps']} steps), it reaches NN SSIM {last['nn_ssim_mean']:.3f}, "
                        f"{last['nn_ssim_share_above_0.6'] * 100:.0f} % above 0.6, pairwise SSIM "
                        f"{last['pairwise_ssim']:.3f} and two-sample accuracy {last['two_sample_accuracy']:.3f}, "
                        f"against the stretch targets NN SSIM 0.75 and two-sample accuracy 0.70.")
    return ["### A masked-code prior (MaskGIT-style), measured", "",
            "The PixelCNN decides a slice's layout row by row. A masked-code prior (`vqvae_lib.masked`, "
            "`PixelCNNConfig(architecture=\"masked\")`) predicts every hidden code from all the visible codes around "
            "it, both ways (a small U-Net whose coarsest level sees the whole map), and draws a map in "
            f"{first['prior']['config']['mask_steps']} parallel steps, the most confident codes first (Chang et al. "
            "2022). Its bits per code are those of a fixed random order revealed in as many groups: a proper "
            "likelihood, but of a weaker sampler, so they sit above the PixelCNN's. The masked rows share one "
            f"{first['vqvae']['minutes']:g}-minute VQ-VAE ({first['vqvae']['steps']} steps, reconstructions "
            f"{first['vqvae']['test']['ssim_mean']:.3f}); the prior's minutes in the table, support by "
            f"{first['sampling']['support']}, 256 samples, seed 0, one training each unless marked:", "",
            *rows, "", verdict.strip(), "",
            "Commands: `python benchmarks/sample_quality.py --data default --variant masked --temperature 0.8 "
            "--top-k 32 --support depth` (`--temperature 1` without `--top-k`; `--variant masked-c32` or "
            "`masked-c32-l1`, `--tag rerun` for a second training; `--mask-steps S "
            "--mask-noise G` change the masked sampler's steps and confidence noise); the PixelCNN on the same "
            "VQ-VAE: `--variant position --temperature 0.8 --top-k 32 --support depth --tag rerun` (and "
            "`--temperature 1` without `--top-k`); longer: `--prior-minutes 20` (or 40) with `--variant masked-c32`, "
            "and `--prior-minutes 20` with `--variant position ... --tag rerun`.", "",
            "One sample per depth band from each of these priors, beside real test slices and their reconstructions "
            "(`python benchmarks/prior_samples.py`, from the trained priors of the runs above, which stay local):", "",
            "![PixelCNN after 4 and 20 minutes and masked-code prior after 4, 20 and 40 minutes on one VQ-VAE, one "
            "sample per depth band, above the real slices' reconstructions and the real slices]"
            "(../figures/bench_prior_samples.png)", ""]


def mirror_lines() -> list[str]:
    """The mirror lever (``PixelCNNConfig.mirror``) against the class PixelCNN on the same VQ-VAE, from the records."""
    mirror, base = load("sample-quality-default-mirror-t0.8-k32-depth"), load(TOP_K + "-k32-depth-rerun")
    if mirror is None or base is None or "mirror_symmetry" not in base["samples"]:
        return []
    rows = ["| prior | prior steps | bits/code (test) | NN SSIM | share > 0.6 | border | pairwise SSIM | "
            "intensity W1 | depth agreement | two-sample acc. (three critics) | mirror symmetry |", "|---" * 11 + "|"]
    def row(what: str, v: dict, prior: dict | None = None) -> str:
        """One table row: a prior's samples (with its steps, bits and each critic) or a set of real slices."""
        runs = v.get("two_sample_accuracy_runs") if prior else None
        return (f"| {what} | " + (f"{prior['steps']} | {prior['test_bits_per_code']:.2f} | " if prior else "| | ")
                + f"{v['nn_ssim_mean']:.3f} | {v['nn_ssim_share_above_0.6'] * 100:.0f} % | "
                f"{v['border_tissue_samples']} | {v['pairwise_ssim']:.3f} | {v['intensity_w1']:.3f} | "
                f"{v['depth_agreement'] * 100:.0f} % | {v['two_sample_accuracy']:.3f}"
                + (" (" + ", ".join(f"{x:.3f}" for x in runs) + ")" if runs else "")
                + f" | {v['mirror_symmetry']:.3f} |")

    rows += [row("the class PixelCNN (`position`)", base["samples"], base["prior"]),
             row("with `mirror` (variant `mirror`)", mirror["samples"], mirror["prior"]),
             row("real test slices", base["real"]), row("their reconstructions", base["decoder"])]
    m, b = mirror["samples"], base["samples"]
    gap = base["real"]["mirror_symmetry"] - b["mirror_symmetry"]
    closed = (m["mirror_symmetry"] - b["mirror_symmetry"]) / gap if gap > 0 else 0.0
    critic_spread = max(max(v["two_sample_accuracy_runs"]) - min(v["two_sample_accuracy_runs"]) for v in (m, b))
    better = m["two_sample_accuracy"] < b["two_sample_accuracy"] - critic_spread
    return ["### Mirror context for the PixelCNN, measured", "",
            "A brain is nearly left-right symmetric, but the gated PixelCNN's horizontal stack reaches only a few "
            "columns to the left: the right half of a row is drawn without seeing its mirror image (samples' outlines "
            "are less symmetric than real ones, last column). With `PixelCNNConfig.mirror`, the features before the "
            "output head at (i, j) also get a projection of the code at (i, w - 1 - j) when that one was drawn first "
            "(still causal; it starts at zero). Both priors on the same "
            f"{base['vqvae']['minutes']:g}-minute VQ-VAE ({base['vqvae']['steps']} steps), {base['prior']['minutes']:g}"
            f" minutes of prior training, the class sampling settings of the time "
            f"(T = {base['sampling']['temperature']:g}, "
            f"top-k {base['sampling']['top_k']}, support by {base['sampling']['support']}), 256 samples, seed 0:", "",
            *rows, "",
            f"Mirror symmetry: the IoU of each brain mask with its mirror about its own centre column. `mirror` moves "
            f"it from {b['mirror_symmetry']:.3f} to {m['mirror_symmetry']:.3f} ({closed * 100:.0f} % of the gap to "
            f"real slices, {base['real']['mirror_symmetry']:.3f}); NN SSIM {b['nn_ssim_mean']:.3f} -> "
            f"{m['nn_ssim_mean']:.3f}, two-sample accuracy {b['two_sample_accuracy']:.3f} -> "
            f"{m['two_sample_accuracy']:.3f} (one setting's three critics lie up to {critic_spread:.3f} apart): "
            + ("the critic finds the samples more real." if better else "the critic does not find them more real, "
               "and the class profile keeps the plain prior."), "",
            "Command: `python benchmarks/sample_quality.py --data default --variant mirror --temperature 0.8 "
            "--top-k 32 --support depth` (the PixelCNN: `--variant position ... --tag rerun`).", ""]


def top_k_verdict(s: list[dict]) -> str:
    """What the top-k rows show: how far apart the settings lie, against the spread of one setting's three critics."""
    def span(key: str) -> float:
        return max(v[key] for v in s) - min(v[key] for v in s)

    critic_spread = max(max(v["two_sample_accuracy_runs"]) - min(v["two_sample_accuracy_runs"]) for v in s)
    return (f"Across these settings NN SSIM moves by {span('nn_ssim_mean'):.3f} and the two-sample accuracy by "
            f"{span('two_sample_accuracy'):.3f}, while one setting's three critics lie up to {critic_spread:.3f} "
            "apart: at T = 0.8 with the support, top-k decides neither target. A smaller k makes samples more "
            f"alike (pairwise SSIM {span('pairwise_ssim'):.3f} apart) and shifts their intensities (W1 up to "
            f"{max(v['intensity_w1'] for v in s):.3f}). The class profile kept top-k 32 then "
            "(until 2026-12-06: 'Top-k at T = 0.7' below).")


def cue_lines() -> list[str]:
    """'What gives the samples away': every critic_cues record, one column each (the notebooks' class run first)."""
    cues = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("critic-cues-*.json"),
                                                      key=lambda p: (p.stem != "critic-cues-default-class", p.stem))]
    if not cues:
        return []
    pairs = list(dict.fromkeys(name for c in sorted(cues, key=lambda c: -len(c["pairs"]))   # every pair, in the
                               for name in c["pairs"]))                                   # fullest record's order

    def cell(c: dict, name: str) -> str:
        v = c["pairs"].get(name)
        return "-" if v is None else (f"{v['two_sample_accuracy']:.3f} ({', '.join(f'{r:.2f}' for r in v['runs'])};"
                                      f" {v['n'][0]} vs {v['n'][1]})")
    heads = [f"{c['data']}, `{c['run']}` ({c['vqvae_steps']} + {c['prior_steps']} steps, T = "
             f"{c['sampling']['temperature']:g}, " + (f"top-k {c['sampling']['top_k']})" if c["sampling"]["top_k"]
                                                      else "no top-k)") for c in cues]
    s = cues[0]["sampling"]
    return ["### What gives the samples away", "",
            "The two-sample critic (three critics trained to the end) on pairs of image sets that each remove one "
            "possible cue, for the notebooks' class run on the built-in data and for other runs (column heads: data, "
            f"run folder, VQ-VAE + prior steps, sampling temperature and top-k); 256 samples with support "
            f"'{s['support']}'; where two real sets are needed, the test slices split in halves. Blurring one "
            "set alone gives it away at once (real blurred vs real), so the control for fine texture is both sets "
            "blurred alike; brain masks keep only where the tissue is (outline, ventricles, sulci), and the "
            "reconstructions' masks are their control: where those are told from real masks too, the masks say "
            "little about the prior. Each cell: mean (three critics; "
            "images in each set); - : not measured for that run (the pair was added later).", "",
            "| pair | " + " | ".join(heads) + " |", "|---" * (1 + len(cues)) + "|",
            *(f"| {name} | " + " | ".join(cell(c, name) for c in cues) + " |" for name in pairs), "",
            *measure_lines(cues[0]),
            "Commands: `python benchmarks/critic_cues.py` (the notebooks' run), `python benchmarks/critic_cues.py "
            "--data D --run RUN` (" + "; ".join(f"{c['name']}: {c['date'][:10]} {c.get('commit') or ''}"
                                               for c in cues) + ").", ""]


def measure_lines(cue: dict) -> list[str]:
    """One critic_cues record's simple measures (``sample_quality.slice_measures``): the mean of each for samples,
    reconstructions and real slices, and how well each alone tells the first two from the real slices."""
    measures = cue.get("measures")
    if not measures:
        return []
    rows = ["| measure | samples | reconstructions | real test slices | separability: samples vs real | "
            "reconstructions vs real | samples standardised per slice vs real |", "|---|---|---|---|---|---|---|"]
    rows += [f"| {name} | {m['samples_mean']:.3f} | {m['reconstructions_mean']:.3f} | {m['real_mean']:.3f} | "
             f"{m['samples_separability']:.3f} | {m['reconstructions_separability']:.3f} | "
             + (f"{m['standardised_samples_separability']:.3f} |" if "standardised_samples_separability" in m
                else "- |")
             for name, m in sorted(measures.items(), key=lambda item: -item[1]["samples_separability"])]
    n1, n2 = cue["pairs"]["samples vs real"]["n"]
    null = 0.5 + math.sqrt(2 / math.pi) * math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))   # E|AUC - 0.5| + 0.5, normal
    best, m = max(measures.items(), key=lambda item: item[1]["samples_separability"])
    recon_name, r = max(measures.items(), key=lambda item: item[1]["reconstructions_separability"])
    return [f"Simple measures of the same {cue['data']} samples (`{cue['run']}`), one at a time "
            "(`sample_quality.slice_measures`; separability: the area under the ROC curve of a threshold on one "
            "measure, folded to at least 0.5, which is chance; folded, two sets without any difference read "
            f"{null:.2f} on average at {n1} against {n2} slices): each row's mean over the set, and how well it "
            "alone tells the set from the real test slices; the last column: the samples with each slice's brain "
            "intensities moved to the mean and spread of a real test slice of the same depth band (the critic's "
            "pair 'samples standardised per slice').", "", *rows, "",
            f"The measure that tells the samples apart best is the {best} ({m['samples_mean']:.3f} against "
            f"{m['real_mean']:.3f} for real slices; separability {m['samples_separability']:.3f}). The "
            f"reconstructions are told apart best by the {recon_name} ({r['reconstructions_separability']:.3f}; "
            f"samples {r['samples_separability']:.3f}): "
            "where the reconstructions differ as much as the samples, the decoder, not the prior, is the cause.", ""]


def spread_sentence(records: list[dict]) -> str:
    """How far two trainings of the class settings lie apart, and how the probe's step count varies: the yardstick
    for the levers."""
    plain = [r for r in records if at_class_budget(r)]
    twins = [r for r in plain if r["variant"] in ("class", "position")]
    steps = [r["prior"]["steps"] for r in plain if r["variant"] in SAME_COST]
    if len(twins) != 2 or not steps:
        return ""
    a, b = (t["samples"] for t in twins)
    return (f"Two trainings of the class settings (variants `class` and `position`: the same settings, each with its "
            f"own VQ-VAE) lie {abs(a['nn_ssim_mean'] - b['nn_ssim_mean']):.3f} apart in NN SSIM, "
            f"{100 * abs(a['nn_ssim_share_above_0.6'] - b['nn_ssim_share_above_0.6']):.0f} points in the share above "
            f"0.6 and {abs(a['two_sample_accuracy'] - b['two_sample_accuracy']):.2f} in two-sample accuracy: a lever "
            "must beat the reference by more than that. The timing probe planned "
            f"{min(steps)}-{max(steps)} steps for priors of the same cost per step ({', '.join(SAME_COST)}): its "
            "estimate varies with the machine's load, and fewer steps mean worse samples.")


def _label_mix(r: dict) -> str:
    """How a record's samples got their labels, where it matters (labels of unequal frequency: the kaggle classes);
    records before 2026-12-04 took each label in turn."""
    if r["data"] == "default":  # depth bands of equal size: both ways give the same labels
        bands = r["prior"]["config"].get("depth_buckets", 4)
        return f", {bands} depth bands" if r["prior"]["config"]["n_labels"] else ""
    return ", labels as in training" if r["sampling"].get("labels") == "training" else ", labels in turn"


def sample_table(records: list[dict]) -> list[str]:
    head = " | ".join(f"{name} ({target})" for _, name, target in SAMPLE_MEASURES)
    rows = [f"| data | variant | sampling | VQ-VAE + prior minutes (steps) | recon SSIM / brain SSIM (test) | prior "
            f"bits/code (test) | {head} | measured |", "|---" * (7 + len(SAMPLE_MEASURES)) + "|"]
    for r in records:
        vq, prior, ev = r["vqvae"], r["prior"], r["vqvae"]["test"]
        cells = " | ".join(f"**{_value(r['samples'], k, r)}** ({_value(r['real'], k, r)}"
                           + (f", recon {_value(r['decoder'], k, r)}" if "decoder" in r else "") + ")"
                           for k, _, _ in SAMPLE_MEASURES)
        sampling = (f"T = {r['sampling']['temperature']:g}"
                    + (f", top-k {r['sampling']['top_k']}" if r["sampling"]["top_k"] else "")
                    + (f", support by {r['sampling']['support']}" if r["sampling"].get("support", "none") != "none"
                       else "")
                    + (f" within {r['sampling']['support_radius']}" if r["sampling"].get("support_radius") else "")
                    + _label_mix(r)
                    + (f", seed {r['sampling']['seed']}" if r["sampling"].get("seed") else ""))
        variant = r["variant"] + (f" ({r['tag']})" if r.get("tag") else "")
        rows.append(f"| {r['data']} ({r['split_kind']}) | {variant} | {sampling} | "
                    f"{vq['minutes']:g} + {prior['minutes']:g} "
                    f"({vq['steps']} + {prior['steps']}) | {ev['ssim_mean']:.3f} / {ev['ssim_brain_mean']:.3f} | "
                    f"{prior['test_bits_per_code']:.2f} | {cells} | {r['date'][:10]} {r.get('commit') or ''} |")
    return rows


def sampling_suffix(temperature: float, top_k: int | None, support: str) -> str:
    """The part of a sample-quality record's name that benchmarks/sample_quality.py writes for these sampling
    settings (with a support): "t0.7-depth", "t0.7-k32-depth"."""
    return f"t{temperature:g}" + (f"-k{top_k}" if top_k else "") + f"-{support}"


def class_status() -> dict[str, str]:
    """The class profile's own runs at its own sampling settings (named as benchmarks/sample_quality.py names
    them, so the table follows ``Profile.sampling``): record name -> column title."""
    s = get_profile("class").sampling
    settings = sampling_suffix(s.temperature, s.top_k, s.support)
    return {f"sample-quality-default-class-{settings}": "class budget, built-in, seed 0",
            f"sample-quality-default-class-{settings}-seed1": "seed 1",
            f"sample-quality-kaggle-class-{settings}": "class budget, kaggle"}


# the generation issue's targets, one row each: (label, measure of the samples or "recon" for the VQ-VAE's test SSIM,
# whether a value meets it given its record)
STATUS_TARGETS = [
    ("NN SSIM >= 0.70", "nn_ssim_mean", lambda v, r: v >= 0.70),
    ("share of samples with NN SSIM > 0.6 >= 90 %", "nn_ssim_share_above_0.6", lambda v, r: v >= 0.90),
    ("samples with border tissue: 0", "border_tissue_samples", lambda v, r: v == 0),
    ("pairwise SSIM within 0.05 of the real slices'", "pairwise_ssim",
     lambda v, r: abs(v - r["real"]["pairwise_ssim"]) <= 0.05),
    ("copies (NN SSIM > 0.95): none", "memorised_share", lambda v, r: v == 0),
    ("two-sample accuracy <= 0.80", "two_sample_accuracy", lambda v, r: v <= 0.80),
    ("depth agreement >= 70 % (built-in data)", "depth_agreement", lambda v, r: v >= 0.70),
    ("reconstruction SSIM (test) >= 0.95", "recon", lambda v, r: v >= 0.95),
    ("stretch: NN SSIM >= 0.75", "nn_ssim_mean", lambda v, r: v >= 0.75),
    ("stretch: two-sample accuracy <= 0.70", "two_sample_accuracy", lambda v, r: v <= 0.70),
]


def longest_best(records: list[dict], data: str) -> dict | None:
    """Of ``data``'s records beyond the class budget (3 + 4 minutes) scored by critics trained to the end, the one
    whose samples the critic tells from real slices least often: the best generation measured with more time."""
    longer = [r for r in records if r["data"] == data and "critic" in r
              and r["vqvae"]["minutes"] + r["prior"]["minutes"] > 7]
    return min(longer, key=lambda r: r["samples"]["two_sample_accuracy"], default=None)


def status_cell(record: dict, key: str, test) -> str:
    """One target's cell: the value, with the real test slices' scored the same way (and for the critic the
    reconstructions': a perfect prior through this decoder), and whether the target is met."""
    if key == "recon":
        value = record["vqvae"]["test"]["ssim_mean"]
        return f"{value:.3f} {'✓' if test(value, record) else '✗'}"
    value = record["samples"].get(key)
    if value is None:
        return "-"
    beside = []
    if key in ("nn_ssim_mean", "pairwise_ssim", "two_sample_accuracy", "depth_agreement"):
        beside.append(f"real {_value(record['real'], key, record)}")
    if key == "two_sample_accuracy" and "decoder" in record:
        beside.append(f"recon {_value(record['decoder'], key, record)}")
    beside = f" ({', '.join(beside)})" if beside else ""
    return f"{_value(record['samples'], key, record)}{beside} {'✓' if test(value, record) else '✗'}"


def status_columns(records: list[dict]) -> list[tuple[str, dict]]:
    by_name = {r["name"]: r for r in records}
    columns = [(title, by_name[name]) for name, title in class_status().items() if name in by_name]
    for data, title in (("default", "more time, built-in"), ("kaggle", "more time, kaggle")):
        best = longest_best(records, data)
        if best is not None:
            columns.append((f"{title}: {best['variant']} {best['vqvae']['minutes']:g} + {best['prior']['minutes']:g} "
                            f"min", best))
    return columns


def status_rows(records: list[dict]) -> list[str]:
    """The README's table of the generation targets: the class profile (its own runs and sampling settings) and the
    best longer run of each data set (``longest_best``), each cell with ✓ (met) or ✗, then the records."""
    columns = status_columns(records)
    rows = ["| target | " + " | ".join(title for title, _ in columns) + " |", "|---" * (1 + len(columns)) + "|"]
    for label, key, test in STATUS_TARGETS:
        rows.append(f"| {label} | " + " | ".join(status_cell(r, key, test) for _, r in columns) + " |")
    rows += ["", "Records (benchmarks/results/, steps VQ-VAE + prior): " + "; ".join(
        f"{title.split(':')[0]}: `{r['name']}` ({r['vqvae']['steps']} + {r['prior']['steps']})"
        for title, r in columns) + "."]
    return rows


README_VARIANTS = ("class", "position", "no-position", "coarse")  # the README's sample table: the class profile, and
# what position and the coarse-to-fine prior buy (position, no-position and coarse share one VQ-VAE and one budget)


EARLIER_TOP_K = 32   # the class profile's top-k until 2026-12-06


def in_readme(r: dict) -> bool:
    """The README's sample rows: those variants at T = 1, plain and with top-k 32 (the profile's until 2026-12-06;
    every seed); sampled
    with a support, only the class profile's own (the support comparison on one prior is in RESULTS.md); and the
    class profile at its own sampling settings (every seed)."""
    s, profile = r["sampling"], get_profile("class").sampling
    if r["variant"] == "class" and (s["temperature"], s["top_k"], s.get("support", "none")) == (
            profile.temperature, profile.top_k, profile.support):
        return s.get("labels") in (None, "training")          # the CLI's label mix
    return (r["variant"] in README_VARIANTS and s["temperature"] == 1.0
            and s["top_k"] in (None, EARLIER_TOP_K)
            and (s.get("support", "none") == "none" or r["variant"] == "class"))


# the README's reconstruction rows: one machine, the three-part split, ours against both baselines
README_QUALITY = ("ours-kaggle-128-10min", "reference-kaggle-128-10min", "misha-kaggle-128-10min",
                  "ours-kaggle-128-class-budget", "ours-default-128-10min", "reference-default-128-10min",
                  "misha-default-128-10min")


def headline_rows() -> list[str]:
    """The README's table of headline numbers, each from its record (named in the last column)."""
    rows = ["| what | number | record (machine) |", "|---|---|---|"]
    for name in README_QUALITY:
        r = load(name)
        if r is None:
            continue
        ev, tr = r["eval"], r["train"]
        brain = f", brain SSIM {ev['ssim_brain_mean']:.4f}" if "ssim_brain_mean" in ev else ""
        asked = re.search(r"-(\d+)min$", name)
        budget = ("the class profile's budget" if "class-budget" in name else
                  f"{asked.group(1)}-minute budget ({tr['train_seconds'] / 60:.1f} min of steps)" if asked else
                  f"{tr['train_seconds'] / 60:.1f} min")
        rows.append(f"| {r['data']}, {label(r)}, {budget}: SSIM on {ev['n_images']} held-out slices ({scored_on(r)}) "
                    f"| **{ev['ssim_mean']:.4f}**{brain}; {ev['active_codes']} of 512 codes used, {tr['steps']} steps "
                    f"| `{name}` ({short_cpu(r['machine'])}) |")
    for run in sorted(RESULTS.glob("throughput-*.json")):
        run = json.loads(run.read_text())
        for r in run["records"]:
            unit = "images/s" if r["model"] == "vqvae" else "code maps/s"
            rows.append(f"| training throughput, {r['model']}, {r['variant']} ({r['processes']} process x "
                        f"{r['threads_per_process']} threads, batch {r['batch_per_process']}) | {r['rate']:.0f} {unit} "
                        f"| `{run_name(run)}` ({short_cpu(run['machine'])}) |")
    sampler = load("sampler-trained-n16-t2")
    if sampler:
        rows.append(f"| sampling 16 code maps of 32x32 (class prior, {sampler['threads']} threads) | fast sampler "
                    f"**{sampler['fast_seconds']} s**, naive {sampler['naive_seconds']} s ({sampler['speedup']}x, "
                    f"identical maps: {sampler['identical']}) | `sampler-trained-n16-t2` "
                    f"({short_cpu(sampler['machine']) if 'machine' in sampler else '-'}) |")
    loading = load("data-loading")
    if loading:
        rows.append(f"| loading {loading['slices']:,} slices of {loading['file_size']}x{loading['file_size']} "
                    f"(OASIS-sized) | {loading['decode_seconds']} s decoding, **{loading['cached_seconds']} s** from "
                    f"the cache | `data-loading` ({short_cpu(loading['machine']) if 'machine' in loading else '-'}) |")
    return rows


def run_name(run: dict) -> str:
    return f"throughput-{run['device']}"


def notebook_rows() -> list[str]:
    """Each notebook's time and peak memory from scratch (``benchmarks/notebook_times.py``)."""
    r = load("notebook-times-class")
    if r is None:
        return ["Not measured yet: `python benchmarks/notebook_times.py`."]
    rows = [f"| notebook | from scratch, class profile | peak memory | within {r['limits']['seconds'] // 60} min "
            f"and {r['limits']['peak_rss_mb'] / 1024:.0f} GB |", "|---|---|---|---|"]
    for nb in r["notebooks"]:
        rows.append(f"| `{nb['notebook']}` | {nb['seconds'] / 60:.1f} min | {nb['peak_rss_mb'] / 1024:.1f} GB | "
                    f"{'yes' if nb['within_limits'] else '**no**'} |")
    rows += ["", f"Measured by `python benchmarks/notebook_times.py` (record `notebook-times-class`: "
                 f"{describe(r['machine'])}; {r['date'][:10]} {r.get('commit') or ''}), every notebook in order "
                 "in a fresh `VQVAE_HOME`: the built-in data is built and every model trained inside the notebooks."]
    return rows


def readme_blocks(samples: list[dict]) -> dict[str, list[str]]:
    """Every generated block of README.md, by name (``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``)."""
    return {"headline": headline_rows(), "notebook-times": notebook_rows(),
            "generation-status": status_rows(samples),
            "sample-quality": sample_table([r for r in samples if in_readme(r)]),
            "prior-time": time_rows(time_curves())}


def replace_block(text: str, name: str, rows: list[str]) -> str:
    """``text`` with the lines between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` replaced by ``rows``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"README.md has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    return head + start + "\n" + "\n".join(rows) + "\n" + end + rest.split(end, 1)[1]


def readme_text() -> str:
    """README.md as ``report.py`` would write it from the records now (a test compares it with the file)."""
    text = (ROOT / "README.md").read_text()
    for name, rows in readme_blocks(sample_records()).items():
        text = replace_block(text, name, rows)
    return text


def main() -> None:
    quality = quality_records()
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("throughput-*.json"))]
    sampler, loading = load("sampler-trained-n16-t2"), load("data-loading")
    machines = {describe(r["machine"]) for r in quality + runs}
    lines = ["# Benchmark results", "",
             "Written by `python benchmarks/report.py` from `benchmarks/results/*.json`; every number below was "
             "measured by the command given with it. Machine of the CPU rows: " + "; ".join(sorted(machines)) + ".",
             "GPU rows: " + NOT_MEASURED + ".", "",
             "## Reconstruction quality against training time", "",
             "128x128 slices -> 32x32 codes, K = 512, trained from scratch through the CLI for a fixed training time "
             "(training steps only; validation and checkpoints not counted), scored on held-out slices. `kaggle` is "
             "`../shared/data/oasis-kaggle/train` (5,121 real OASIS-derived slices, split by file: no subject ids in "
             "the file names; the rows measured before the three-part split were scored on the validate part of an "
             "80/20 split, see 'scored on'); "
             "`default` is the built-in MNI152 set (its test subjects). `ours` is the class profile (64 channels, "
             "data-initialised EMA codebook with restarts, AdamW 2e-3 with warm-up and cosine decay, batch 8). "
             "The baselines as their authors configured them (sources in `VQVAEConfig.reference` and "
             "`VQVAEConfig.misha`): `reference` is the DeepMind Sonnet example (128 channels, EMA codebook uniform in "
             "+-sqrt(3/D) with zero-started debiased statistics, inputs in [-0.5, 0.5], MSE divided by the data "
             "variance, Adam 3e-4, batch 32); `misha` is MishaLaskin/vqvae (the same sizes, codebook loss with beta on "
             "the codebook term as its code has it, codebook uniform in +-1/K, inputs in [-1, 1], MSE divided by the "
             "data variance, Adam 3e-4 with amsgrad, batch 32). Reference rows measured before the faithful "
             "configuration (random codebook in +-1/K, EMA statistics started at one) were replaced by the rerun.", "",
             *quality_table(quality), "",
             f"![SSIM against training time](../figures/{ssim_figure(quality).name})", "",
             "Commands: `python benchmarks/vqvae_quality.py --data kaggle --minutes 10 --model ours` "
             "(`--model reference`, `--model misha`, `--profile class` for the class budget, `--data default`).", ""]
    samples = sample_records()
    if samples:
        lines += ["## Sample quality: do new slices look like real ones?", "",
                  f"{samples[0]['sampling']['n']} samples per row (labels in the training slices' proportions, before "
                  "2026-12-04 each label in turn; seed 0 unless the row says otherwise), "
                  "decoded and scored by `vqvae_lib.sample_quality.measure` against the test split, which no model "
                  "trained or validated on. Each cell: **samples** (real test slices scored the same way: the "
                  "ceiling; `real_ceiling`; in records since 2026-12-04 also `recon`: the same real slices through "
                  "the VQ-VAE, i.e. their own code maps decoded, what a perfect prior would reach with this "
                  "decoder). Targets of the generation issue in the column heads. NN SSIM: SSIM to "
                  "the most similar training slice; border tissue: samples with tissue where no training slice has "
                  "any; pairwise SSIM: mean SSIM between samples (diversity); two-sample acc.: a small CNN telling "
                  "samples from real test slices, 5-fold cross-validated (0.5 = indistinguishable; the mean of three "
                  "critics, each trained 24 epochs with a cosine-decayed learning rate; **a * marks the earlier "
                  "critic** (12 epochs at a constant rate, one critic per record), which often failed to learn and "
                  "scored samples 0.1-0.3 too low, less where already near 1: on the same class samples 0.71-0.90 "
                  "against 0.97-0.99 for critics trained to the end; real against real 0.51 with the earlier critic, "
                  "0.52 now); depth "
                  "agreement: "
                  "the nearest training slice lies in the requested depth band (built-in data only; the bands are the "
                  "prior's labels and the support's, their number in the sampling column: 4 bands of 9 slices before "
                  "2026-12-04, 12 of 3 slices in the class profile since; `depth9` / `depth12` / `depth18` try "
                  "others; narrower bands make the test stricter). "
                  "On kaggle the "
                  "split is by file, so the real ceiling is inflated (neighbouring slices of one subject sit in train "
                  "and test).", "", "### Where generation stands", "",
                  "The generation issue's targets (one per row; ✓ met, ✗ not) for the class profile's own runs at its "
                  "sampling settings and, for each data set, the run beyond the class budget whose samples the critic "
                  "tells from real slices least often; in brackets the real test slices scored the same way and, for "
                  "the critic, their reconstructions.", "", *status_rows(samples), "",
                  "### Every record", "", *sample_table(samples), "",
                  f"![Sample quality of the prior variants](../figures/{sample_figure(samples).name})", "",
                  "Command: `python benchmarks/sample_quality.py --data default --variant class` (`--data kaggle`; "
                  "`--variant no-position`, ...; `--prior-minutes M`).", ""]
        lines += ["### Levers for the prior at the class budget", "",
                  "Each on the same 3-minute VQ-VAE as the reference row (code-noise trains its own), prior 4 minutes "
                  "(steps planned by the timing probe), 256 samples at T = 1 from all codes, seed 0; the real "
                  "ceiling is the table's above. " + spread_sentence(samples), "",
                  *lever_rows(samples), "",
                  "Command: `python benchmarks/sample_quality.py --data default --variant LEVER`.", ""]
        lines += cue_lines()
        lines += time_lines(samples)
        lines += (stretch_lines() + top_k_lines() + top_k_class_lines() + masked_lines() + kaggle_masked_lines()
                  + decoder_loss_lines()
                  + mirror_lines())
    if runs:
        lines += ["## Training throughput", "",
                  f"Steady-state rate over the second half of {runs[0]['steps']} steps from scratch (after warm-up and "
                  f"compilation), from the per-step training clock; mean of {runs[0].get('repeats', 1)} runs [lowest–"
                  "highest]; the factor is against the fp32 row of the same device and model. "
                  "On the CPU, one process uses both cores; torchrun x2 runs two processes of one thread each "
                  "(gloo backend), each with the batch of one process, so it is compared with one process on the "
                  "doubled batch as well.", "",
                  *throughput_table(runs), "",
                  f"![Training throughput](../figures/{throughput_figure(runs).name})", "",
                  "Command: `python benchmarks/throughput.py --data kaggle` (on a GPU machine: "
                  "`--device cuda --nproc 1 2 4 8`).", ""]
        lines += verdict(runs[0])
    if sampler:
        lines += ["## Sampling speed", "",
                  "| sampler | 16 code maps of 32x32 | |", "|---|---|---|",
                  "| fast (cached vertical and horizontal stack features: each position computed once) | "
                  f"{sampler['fast_seconds']} s | |",
                  f"| naive (one full forward pass per position) | {sampler['naive_seconds']} s | timed on the last "
                  f"{sampler['naive_rows_timed']} rows, scaled to the map |",
                  f"| speed-up | {sampler['speedup']}x | identical code maps: {sampler['identical']} |",
                  "", f"Class-profile prior ({sampler['parameters']:,} parameters), {sampler['threads']} CPU threads. "
                  "GPU: " + NOT_MEASURED + ". Command: `python benchmarks/sampler_speed.py --prior "
                  "runs/class-default/prior.pt --naive-rows 4`.", ""]
    if loading or quality:
        lines += ["## Data loading", "", "| data | slices | decode from files | reopen from the cache |",
                  "|---|---|---|---|"]
        if loading:
            lines.append(f"| OASIS-sized stand-in, {loading['file_size']}x{loading['file_size']} PNG with masks -> "
                         f"{loading['image_size']}x{loading['image_size']} | {loading['slices']:,} | "
                         f"{loading['decode_seconds']} s | {loading['cached_seconds']} s |")
        for r in quality:
            if r["data"] == "kaggle" and r["model"] == "ours" and "class-budget" in r["name"]:
                load_ = r["loading"]
                lines.append(f"| kaggle train split, 176x208 JPG -> 128x128 | {load_['train_slices']:,} | "
                             f"{load_['decode_seconds']} s | {load_['cached_seconds']} s |")
        lines += ["", "Commands: `python benchmarks/data_loading.py` (the stand-in) and `benchmarks/vqvae_quality.py` "
                  "(each quality record times its own data).", ""]
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(lines))
    (ROOT / "README.md").write_text(readme_text())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
