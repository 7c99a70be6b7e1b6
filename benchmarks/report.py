"""``python benchmarks/report.py``: the tables ``BLOCKS`` makes from the current records (benchmarks/results/*.json,
schema required) into the generated blocks of README.md and RESULTS.md, and two figures; no prose."""
from __future__ import annotations

import json
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
DOCUMENTS = (ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md")
SCHEMA = 1
DATA = {"default": "built-in", "kaggle": "kaggle"}


def load_records(folder: Path = RESULTS) -> dict[str, dict]:
    """Every current record by file name (without .json); one without a known schema version is refused."""
    records = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("schema") != SCHEMA:
            raise SystemExit(f"{path.relative_to(ROOT)}: schema {record.get('schema')!r}, report.py reads schema "
                             f"{SCHEMA}; rerun its benchmark, or move it to {folder.relative_to(ROOT)}/archive/")
        records[path.stem] = record
    return records


def kind(records: dict[str, dict], prefix: str) -> dict[str, dict]:  # the records whose name starts with prefix
    return {name: r for name, r in records.items() if name.startswith(prefix)}


def quality(records: dict[str, dict]) -> dict[str, dict]:
    """The reconstruction records (benchmarks/vqvae_quality.py): kaggle first, ours before the baselines."""
    chosen = {n: r for n, r in records.items() if "eval" in r}
    return dict(sorted(chosen.items(), key=lambda item: (item[1]["data"] != "kaggle", ("ours", "reference", "misha")
                                                         .index(item[1]["model"]), -item[1]["train"]["train_seconds"])))


def samples(records: dict[str, dict]) -> dict[str, dict]:
    """The sample-quality records (benchmarks/sample_quality.py) by data set, minutes, name."""
    return dict(sorted(kind(records, "sample-quality-").items(),
                       key=lambda i: (i[1]["data"], i[1]["vqvae"]["minutes"] + i[1]["prior"]["minutes"], i[0])))


def cpu(m: dict) -> str:   # "AMD EPYC", "Intel Xeon"
    return m["cpu"].replace("(R)", "").replace(" Processor", "").replace("  ", " ").strip()


def describe(m: dict) -> str:
    return f"{cpu(m)}, {m['cores']} cores, {'GPU ' + m['gpu'] if m.get('gpu') else 'no GPU'}; torch {m['torch']}, " \
           f"Python {m['python']}"


def measured(r: dict) -> str:
    return f"{r['date'][:10]} {r.get('commit') or ''}".strip()


def command(name: str, r: dict) -> str:
    """The command that writes record ``name`` again (from the record's own fields)."""
    if name.startswith("sample-quality-"):
        s, profile = r["sampling"], get_profile("class")
        words = [f"--data {r['data']} --variant {r['variant']}"]
        for flag, value, default in (("--vqvae-minutes", r["vqvae"]["minutes"], profile.vqvae_train.minutes),
                                     ("--prior-minutes", r["prior"]["minutes"], profile.prior_train.minutes),
                                     ("--temperature", s["temperature"], profile.sampling.temperature),
                                     ("--top-k", s["top_k"] or 0, profile.sampling.top_k or 0),
                                     ("--support", s["support"], profile.sampling.support),
                                     ("--labels", s.get("labels") or "training", "training"),
                                     ("--seed", s["seed"], 0), ("--tag", r.get("tag"), None), ("-n", s["n"], 256)):
            if value != default and not (r["variant"] == "course" and flag.endswith("-minutes")):   # steps, not minutes
                words.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
        return "python benchmarks/sample_quality.py " + " ".join(words)
    if "eval" in r:
        minutes = re.search(r"-(\d+)min$", name)
        budget = f"--minutes {minutes.group(1)}" if minutes else f"--profile {r['profile']}"
        return f"python benchmarks/vqvae_quality.py --data {r['data']} --model {r['model']} {budget}"
    if name.startswith("critic-cues-"):
        run = "" if name == f"critic-cues-{r['data']}-class" else f" --run {r['run']}"
        return f"python benchmarks/critic_cues.py --data {r['data']}{run}"
    return {"throughput": f"python benchmarks/throughput.py --data {r.get('data')} --device {r.get('device')}",
            "sampler": "python benchmarks/sampler_speed.py" + (f" --prior {r['prior']}" if r.get("prior") else "")
                       + (f" --naive-rows {r['naive_rows_timed']}" if "naive_seconds" in r else " --skip-naive"),
            "notebook": f"python benchmarks/notebook_times.py --profile {r.get('profile')}",
            "data": "python benchmarks/data_loading.py", "dead": r.get("command")}[name.split("-")[0]]


def table(head: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|", *("| " + " | ".join(map(str, r)) + " |"
                                                                         for r in rows)]


def label(r: dict) -> str:
    """A reconstruction record's model, with its loss (ours) and speed options."""
    options = [r["recon_loss"]] if r["model"] == "ours" else []
    options += [o for o, on in (("bf16", r.get("precision") == "bf16"), ("channels_last", r.get("channels_last")))
                if on]
    return r["model"] + (f" ({', '.join(options)})" if options else "")


def budget(name: str, r: dict) -> str:
    minutes = re.search(r"-(\d+)min$", name)
    spent = f"{r['train']['train_seconds'] / 60:.1f} min of steps"
    return (f"{minutes.group(1)}-minute budget" if minutes else f"the {r['profile']} profile's budget") + f" ({spent})"


def scored_on(ev: dict) -> str:
    return f"{ev['split']}, {ev['split_kind']} (leakage {ev['leakage_share_ssim_0.9']:.0%})"


def summary_rows(records: dict[str, dict]) -> list[str]:
    """The README's table: reconstruction against the baselines (built-in data, 10 minutes), the class pair's samples
    against the real ceiling, sampling speed."""
    rows = [[f"reconstruction, {label(r)}, {budget(n, r)}: SSIM on held-out subjects",
             f"**{r['eval']['ssim_mean']:.3f}**; {r['eval']['active_codes']} of 512 codes used", cpu(r["machine"])]
            for n, r in quality(records).items() if r["data"] == "default" and n.endswith("-10min")]
    for r in samples(records).values():
        if r["data"] == "default" and r["variant"] == "class" and at_profile_settings(r) and r["sampling"]["seed"] == 0:
            s, real, recon = r["samples"], r["real"], r["decoder"]
            rows.append([f"samples of the class pair ({r['vqvae']['minutes']:g} + {r['prior']['minutes']:g} min), "
                         f"{s['n']} of them: NN SSIM", f"**{s['nn_ssim_mean']:.3f}**; real test slices "
                         f"{real['nn_ssim_mean']:.3f}", cpu(r["machine"])])
            rows.append(["... two-sample accuracy of a critic (0.5: cannot tell them from real slices)",
                         f"**{s['two_sample_accuracy']:.2f}**; real slices {real['two_sample_accuracy']:.2f}, their "
                         f"reconstructions {recon['two_sample_accuracy']:.2f}", cpu(r["machine"])])
    for s in kind(records, "sampler-").values():
        rows.append([f"sampling {s['n']} code maps, {s['profile']} prior, {s['threads']} threads",
                     f"**{s['fast_seconds']} s**, {s['speedup']}x faster than the naive sampler", cpu(s["machine"])])
    return table(["what", "measured", "CPU"], rows)


def reconstruction_rows(records: dict[str, dict]) -> list[str]:
    """Every reconstruction record, with its command."""
    rows = []
    for name, r in quality(records).items():
        ev, tr = r["eval"], r["train"]
        rows.append([f"`{name}`", r["data"], label(r), budget(name, r), ev["n_images"], scored_on(ev),
                     f"**{ev['ssim_mean']:.4f}**", f"{ev['ssim_brain_mean']:.4f}", f"{ev['psnr_mean']:.2f}",
                     ev["active_codes"], tr["steps"], f"{tr['images_per_second']:.0f}", cpu(r["machine"]),
                     measured(r), f"`{command(name, r)}`"])
    return table(["record", "data", "model", "training time", "held-out slices", "scored on", "mean SSIM",
                  "brain SSIM", "PSNR (dB)", "codes used (of 512)", "steps", "train images/s", "CPU", "measured",
                  "command"], rows)


def ssim_figure(records: dict[str, dict]) -> Path:
    """Validation SSIM against training time of every reconstruction record, one panel per data set."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    styles = {"ours": ("-o", "tab:blue"), "reference": ("--s", "tab:green"), "misha": (":d", "tab:red")}
    for ax, data in zip(axes, ("kaggle", "default")):
        for name, r in quality(records).items():
            if r["data"] == data:
                style, color = styles[r["model"]]
                short = "" if re.search(r"-\d+min$", name) else f", {r['profile']} budget"
                ax.plot([s / 60 for s, _ in r["curve"]], [v for _, v in r["curve"]], style, color=color, ms=3,
                        alpha=0.5 if short else 1.0, label=f"{label(r)}{short}: held-out {r['eval']['ssim_mean']:.3f}")
        ax.set(title={"kaggle": "real OASIS-derived slices (kaggle)", "default": "built-in MNI152 slices"}[data],
               xlabel="training time (minutes, 2 CPU cores)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("validation SSIM (256 slices)")
    fig.suptitle("VQ-VAE reconstruction quality against training time, 128x128 -> 32x32 codes, K = 512")
    return save(fig, "bench_ssim_vs_time.png")


def save(fig, name: str) -> Path:
    fig.tight_layout()
    fig.savefig(FIGURES / name, dpi=110, metadata=figure_metadata("benchmark"))
    plt.close(fig)
    return FIGURES / name


# the generation issue's targets: (label, measure of the samples or "recon" for the VQ-VAE's test SSIM, test)
TARGETS = [("NN SSIM >= 0.70", "nn_ssim_mean", lambda v, r: v >= 0.70),
           ("share of samples with NN SSIM > 0.6 >= 90 %", "nn_ssim_share_above_0.6", lambda v, r: v >= 0.90),
           ("samples with border tissue: 0", "border_tissue_samples", lambda v, r: v == 0),
           ("pairwise SSIM within 0.05 of the real slices'", "pairwise_ssim",
            lambda v, r: abs(v - r["real"]["pairwise_ssim"]) <= 0.05),
           ("copies (NN SSIM > 0.95): none", "memorised_share", lambda v, r: v == 0),
           ("two-sample accuracy <= 0.80", "two_sample_accuracy", lambda v, r: v <= 0.80),
           ("depth agreement >= 70 % (built-in data)", "depth_agreement", lambda v, r: v >= 0.70),
           ("reconstruction SSIM (test) >= 0.95", "recon", lambda v, r: v >= 0.95),
           ("stretch: NN SSIM >= 0.75", "nn_ssim_mean", lambda v, r: v >= 0.75),
           ("stretch: two-sample accuracy <= 0.70", "two_sample_accuracy", lambda v, r: v <= 0.70)]
SHARES = ("nn_ssim_share_above_0.6", "depth_agreement", "memorised_share")


def value(summary: dict, key: str) -> str:
    v, fmt = summary.get(key), "{:.0%}" if key in SHARES else "{:.0f}" if key == "border_tissue_samples" else "{:.3f}"
    return "-" if v is None else fmt.format(v)


def at_profile_settings(r: dict) -> bool:
    """Sampled as the class profile samples (``Profile.sampling``), labels in the training proportions."""
    s, p = r["sampling"], get_profile("class").sampling
    return ((s["temperature"], s["top_k"], s["support"], s.get("support_radius", 0), s.get("labels"))
            == (p.temperature, p.top_k, p.support, p.support_radius, "training"))


def column_title(r: dict) -> str:
    return (f"{DATA[r['data']]}, {r['variant']}{' (' + r['tag'] + ')' if r.get('tag') else ''}, "
            f"{r['vqvae']['minutes']:g} + {r['prior']['minutes']:g} min, seed {r['sampling']['seed']}")


def status_rows(records: dict[str, dict]) -> list[str]:
    """Generation targets (rows) of the records at the profile's sampling (columns), the real ceiling, ✓ or ✗."""
    columns = [r for r in samples(records).values() if at_profile_settings(r)]

    def cell(r: dict, key: str, test) -> str:
        v = r["vqvae"]["test"]["ssim_mean"] if key == "recon" else r["samples"].get(key)
        if v is None:
            return "-"
        beside = [f"real {value(r['real'], key)}"] * (key in ("nn_ssim_mean", "pairwise_ssim", "two_sample_accuracy",
                                                                "depth_agreement"))
        beside += [f"recon {value(r['decoder'], key)}"] * (key == "two_sample_accuracy")
        shown = f"{v:.3f}" if key == "recon" else value(r["samples"], key)
        return shown + (f" ({', '.join(beside)})" if beside else "") + (" ✓" if test(v, r) else " ✗")
    return table(["target", *map(column_title, columns)],
                 [[title, *(cell(r, key, test) for r in columns)] for title, key, test in TARGETS])


def sampling_text(r: dict) -> str:
    s = r["sampling"]
    return (f"T = {s['temperature']:g}" + (f", top-k {s['top_k']}" if s["top_k"] else "")
            + (f", support by {s['support']}" if s["support"] != "none" else "")
            + (f", {r['prior']['config']['depth_buckets']} depth bands" if r["data"] == "default" else "")
            + (f", labels {s['labels']}" if s.get("labels") not in (None, "training") else "")
            + f", seed {s['seed']}")


COLUMNS = [("nn_ssim_mean", "NN SSIM (>= 0.70)"), ("nn_ssim_share_above_0.6", "share > 0.6 (>= 90 %)"),
           ("border_tissue_samples", "border tissue (0)"), ("pairwise_ssim", "pairwise SSIM (real +- 0.05)"),
           ("intensity_w1", "intensity W1"), ("memorised_share", "copies"),
           ("two_sample_accuracy", "two-sample acc. (<= 0.80)"), ("depth_agreement", "depth agreement (>= 70 %)")]


def sample_rows(records: dict[str, dict]) -> list[str]:
    """Every sample-quality record: samples (real test slices, reconstructions), with its record and command."""
    rows = []
    for name, r in samples(records).items():
        vq, prior = r["vqvae"], r["prior"]
        cells = [f"**{value(r['samples'], k)}** ({value(r['real'], k)}, recon {value(r['decoder'], k)})"
                 for k, _ in COLUMNS]
        rows.append([f"`{name}`", f"{DATA[r['data']]} ({r['split_kind']})", r["variant"], sampling_text(r),
                     f"{vq['minutes']:g} + {prior['minutes']:g} ({vq['steps']} + {prior['steps']})",
                     f"{vq['test']['ssim_mean']:.3f}", f"{prior['test_bits_per_code']:.2f}", *cells, measured(r),
                     f"`{command(name, r)}`"])
    return table(["record", "data", "variant", "sampling", "VQ-VAE + prior minutes (steps)", "recon SSIM (test)",
                  "prior bits/code (test)", *(t for _, t in COLUMNS), "measured", "command"], rows)


def cue_rows(records: dict[str, dict]) -> list[str]:
    """Every critic-cues record (a column each): each pair's mean of three critics (their runs; images per set)."""
    cues = kind(records, "critic-cues-")
    pairs = list(dict.fromkeys(p for c in cues.values() for p in c["pairs"]))

    def cell(c: dict, pair: str) -> str:
        v = c["pairs"].get(pair)
        return "-" if v is None else (f"{v['two_sample_accuracy']:.3f} ({', '.join(f'{x:.2f}' for x in v['runs'])}; "
                                      f"{v['n'][0]} vs {v['n'][1]})")
    heads = [f"`{name}`: {c['data']}, `{c['run']}` ({c['vqvae_steps']} + {c['prior_steps']} steps, T = "
             f"{c['sampling']['temperature']:g}, top-k {c['sampling']['top_k']})" for name, c in cues.items()]
    rows = [[pair, *(cell(c, pair) for c in cues.values())] for pair in pairs]
    return [*table(["pair", *heads], rows), "", "Commands: " + "; ".join(
        f"`{command(name, c)}` ({measured(c)})" for name, c in cues.items()) + "."]


MEASURES = {"samples_mean": "samples", "reconstructions_mean": "reconstructions", "real_mean": "real test slices",
            "samples_separability": "separability: samples vs real", "reconstructions_separability":
            "reconstructions vs real", "standardised_samples_separability": "samples standardised per slice vs real"}


def measure_rows(records: dict[str, dict]) -> list[str]:
    """Per critic-cues record with simple measures: each measure's mean and its separability from real slices."""
    return [line for name, c in kind(records, "critic-cues-").items() if c.get("measures") for line in table(
        [f"measure (`{name}`)", *MEASURES.values()], [[m, *(f"{v[k]:.3f}" for k in MEASURES)] for m, v in sorted(
            c["measures"].items(), key=lambda item: -item[1]["samples_separability"])])]


def throughput_rows(records: dict[str, dict]) -> list[str]:
    rows = []
    for run in kind(records, "throughput-").values():
        base = {t["model"]: t["rate"] for t in run["records"] if t["variant"] == "fp32"}
        for t in run["records"]:
            spread = f" [{min(t['rates']):.0f}–{max(t['rates']):.0f}]" if len(t.get("rates", [])) > 1 else ""
            unit = "images/s" if t["model"] == "vqvae" else "code maps/s"
            rate = f"{t['rate']:.1f}{spread} {unit} ({t['rate'] / base[t['model']]:.2f}x)"
            rows.append([run["device"], t["model"], t["variant"], f"{t['processes']} x {t['threads_per_process']}",
                         t["batch_per_process"], rate, cpu(run["machine"]), measured(run)])
    commands = "; ".join(f"`{command(n, r)}`" for n, r in kind(records, "throughput-").items())
    return [*table(["device", "model", "variant", "processes x threads", "batch per process", "throughput", "CPU",
                    "measured"], rows), "", f"Commands: {commands}."]


def throughput_figure(records: dict[str, dict]) -> Path:
    runs = list(kind(records, "throughput-").values())
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, model in zip(axes, ("vqvae", "prior")):
        bars = [(f"{run['device']}: {t['variant']}", t["rate"]) for run in runs for t in run["records"]
                if t["model"] == model][::-1]
        ax.bar_label(ax.barh(*zip(*bars), color="tab:blue"), fmt=" %.0f", fontsize=8)
        ax.set(title=f"{'VQ-VAE' if model == 'vqvae' else 'PixelCNN prior'} training, class profile",
               xlabel="images/s" if model == "vqvae" else "code maps/s")
        ax.set_xlim(0, max(rate for _, rate in bars) * 1.15)
    gpu = "" if any(run["device"].startswith("cuda") for run in runs) else " (GPU: not measured)"
    fig.suptitle("Training throughput on " + describe(runs[0]["machine"]).split(";")[0] + gpu)
    return save(fig, "bench_throughput.png")


def sampler_rows(records: dict[str, dict]) -> list[str]:
    """Each sampler-speed record: the fast sampler, the naive one (a forward pass per position), other timings."""
    rows = []
    for name, s in kind(records, "sampler-").items():
        other = ", ".join(f"{k[:-8].replace('_', ' ')} {v} s" for k, v in s.items() if k.endswith("_seconds")
                          and not isinstance(v, list) and k not in ("fast_seconds", "naive_seconds")) or "-"
        naive = (f"{s['naive_seconds']} s (last {s['naive_rows_timed']} rows, scaled)", f"{s['speedup']}x",
                 s["identical"]) if "naive_seconds" in s else ("-", "-", "-")
        rows.append([f"`{name}`", f"{s['profile']} prior ({s['parameters']:,} parameters), {s['threads']} threads",
                     s["n"], f"**{s['fast_seconds']} s**", *naive, other, cpu(s["machine"]), measured(s),
                     f"`{command(name, s)}`"])
    return table(["record", "prior", "code maps", "fast sampler", "naive sampler", "speed-up", "identical maps",
                  "other timings", "CPU", "measured", "command"], rows)


def loading_rows(records: dict[str, dict]) -> list[str]:
    rows = [[f"OASIS-sized stand-in, {d['file_size']}x{d['file_size']} PNG with masks -> {d['image_size']}x"
             f"{d['image_size']}", f"{d['slices']:,}", f"{d['decode_seconds']} s", f"{d['cached_seconds']} s",
             f"`{command(n, d)}`"] for n, d in kind(records, "data-loading").items()]
    latest = {r["data"]: (n, r) for n, r in sorted(quality(records).items(), key=lambda item: item[1]["date"])}
    rows += [[f"{DATA[data]} train split -> 128x128", f"{r['loading']['train_slices']:,}",
              f"{r['loading']['decode_seconds']} s", f"{r['loading']['cached_seconds']} s", f"`{command(name, r)}`"]
             for data, (name, r) in latest.items()]
    return table(["data", "slices", "decode from files", "reopen from the cache", "command"], rows)


def dead_code_rows(records: dict[str, dict]) -> list[str]:
    """The dead-code restart rule against an earlier commit's (benchmarks/dead_codes.py), per data set and seed."""
    return [line for r in kind(records, "dead-codes").values() for line in table(
        ["data", "seed", "code", "test SSIM", "brain SSIM", "codes used", "restarts", "steps"],
        [[DATA[x["data"]], x["seed"], r[x["code"] if x["code"] == "before" else "after"], f"{x['ssim_mean']:.4f}",
          f"{x['ssim_brain_mean']:.4f}", x["active_codes"], x["restarts"], x["steps"]] for x in r["runs"]])
        + ["", f"`{r['command']}` on {describe(r['machine'])}."]]


def notebook_rows(records: dict[str, dict]) -> list[str]:
    out = []
    for name, r in kind(records, "notebook-times-").items():
        out += table(["notebook", f"from scratch, {r['profile']} profile", "peak memory",
                      f"within {r['limits']['seconds'] // 60} min and {r['limits']['peak_rss_mb'] / 1024:.0f} GB"],
                     [[f"`{nb['notebook']}`", f"{nb['seconds'] / 60:.1f} min", f"{nb['peak_rss_mb'] / 1024:.1f} GB",
                       "yes" if nb["within_limits"] else "**no**"] for nb in r["notebooks"]])
        out += ["", f"`{command(name, r)}` on {describe(r['machine'])}."]
    return out


BLOCKS = {"summary": summary_rows, "notebook-times": notebook_rows, "generation-status": status_rows,
          "sample-quality-records": sample_rows, "reconstruction": reconstruction_rows, "critic-cues": cue_rows,
          "critic-measures": measure_rows, "throughput": throughput_rows, "sampler-speed": sampler_rows,
          "data-loading": loading_rows, "dead-codes": dead_code_rows}


def document_text(path: Path, records: dict[str, dict] | None = None) -> str:
    """``path`` with every generated block written from the records now (a test compares it with the file)."""
    records = load_records() if records is None else records
    text = path.read_text()
    for name in re.findall(r"<!-- ([\w-]+):start -->", text):
        if name not in BLOCKS or f"<!-- {name}:end -->" not in text:
            raise SystemExit(f"{path.name}: block {name!r} is not one of {sorted(BLOCKS)} or has no end marker")
        head, rest = text.split(f"<!-- {name}:start -->", 1)
        text = (head + f"<!-- {name}:start -->\n" + "\n".join(BLOCKS[name](records)) + f"\n<!-- {name}:end -->"
                + rest.split(f"<!-- {name}:end -->", 1)[1])
    return text


def main() -> None:
    records = load_records()
    print(ssim_figure(records), throughput_figure(records), sep="\n")
    for path in DOCUMENTS:
        path.write_text(document_text(path, records))
    print(*DOCUMENTS, sep="\n")


if __name__ == "__main__":
    main()
