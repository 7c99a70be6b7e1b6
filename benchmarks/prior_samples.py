"""One sample per depth band from the PixelCNN priors of sample-quality records, side by side.

    python benchmarks/prior_samples.py        # the class profile's own run (built-in data, record below)
    python benchmarks/prior_samples.py sample-quality-default-position-t0.7-depth \
        sample-quality-default-position-3+20min-t0.7-depth   # priors of benchmarks/sample_quality.py on one VQ-VAE

Each row is the prior of one record in benchmarks/results/ (built-in data; every prior on the codes of one VQ-VAE),
sampled as its record was (temperature, top-k, support, seed) but one slice per column: column c asks every prior
for the same depth band. The last two rows are a real test slice of that band (never trained on) through the VQ-VAE
(its own codes decoded: a perfect prior's ceiling) and as it is. Each row's title carries its record's measures over
256 samples, so the figure and the numbers cannot drift apart: a prior whose checkpoint has another step count than
its record is refused. The trained priors live in runs/ (not committed): a record's "run" names its prior's folder
(the class variant at the class budget: the notebooks' own run). Writes build/bench/prior_samples.png (look at it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CLASS_RECORD = "sample-quality-default-class-t0.7-depth"


def row_title(title: str, record: dict, part: str = "samples") -> str:
    """``title`` and the record's measures of its ``part`` ("samples"; "decoder" or "real": the same test slices,
    through the VQ-VAE or as they are, scored like samples)."""
    s = record[part]
    steps = f" ({record['prior']['steps']} steps)" if part == "samples" else ""
    return (f"{title}{steps}: NN SSIM {s['nn_ssim_mean']:.3f}, critic {s['two_sample_accuracy']:.3f}, "
            f"symmetry {s['mirror_symmetry']:.3f}")


def run_folder(record: dict) -> Path:
    """The folder of a record's trained prior: its "run", else (the class variant at the class budget, which
    trains in the notebooks' own run) the class profile's run folder."""
    if "run" in record:
        return ROOT / record["run"]
    from vqvae_lib import pipeline
    from vqvae_lib.config import get_profile

    return pipeline.default_run_dir(get_profile("class"), record["source"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="*", default=[CLASS_RECORD], help="record names in benchmarks/results/")
    parser.add_argument("--columns", type=int, default=8, help="depth bands shown, evenly from the lowest to the top")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "prior_samples.png")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from matplotlib.figure import Figure

    from vqvae_lib.checkpoint import load_checkpoint, load_prior, load_vqvae
    from vqvae_lib.codemaps import load_code_maps
    from vqvae_lib.data import load_dataset
    from vqvae_lib.plotting import figure_metadata
    from vqvae_lib.sampling import decode, sample, support_for

    records = [json.loads((RESULTS / f"{name}.json").read_text()) for name in args.records]
    if any(r["data"] != "default" for r in records):
        sys.exit("prior_samples.py shows depth bands: records of the built-in data only (--data default)")
    runs = [run_folder(r) for r in records]
    vq_paths = {run / "vqvae.pt" if (run / "vqvae.pt").exists() else run.parent / "vqvae.pt" for run in runs}
    missing = [str(run) for run in runs if not (run / "prior.pt").exists()]
    if missing or len(vq_paths) != 1 or not next(iter(vq_paths)).exists():
        print("each record's prior.pt and one shared vqvae.pt are needed (runs/ is not committed); missing or not "
              "shared: " + ", ".join(missing or map(str, vq_paths)) + "; make them with benchmarks/sample_quality.py",
              file=sys.stderr)
        return 1
    vq_path = vq_paths.pop()
    device = torch.device("cpu")
    vqvae = load_vqvae(vq_path, device)
    rows = []
    for record, run in zip(records, runs):
        step = load_checkpoint(run / "prior.pt", map_location="cpu")["step"]
        if step != record["prior"]["steps"]:
            raise ValueError(f"{run / 'prior.pt'} has {step} steps but its record {record['name']} "
                             f"{record['prior']['steps']}: the prior was trained again since; run its benchmark again")
        title = f"{record['variant']}, {record['prior']['minutes']:g} min"
        rows.append((row_title(title, record), record["sampling"], load_prior(run / "prior.pt", device,
                                                                              vqvae_path=vq_path)))

    prior = rows[0][2]
    n_bands = prior.config.n_labels
    bands = torch.from_numpy(np.linspace(0, n_bands - 1, args.columns).round().astype(np.int64))   # (columns,)
    test = load_dataset("default", "test", vqvae.image_size)                       # test_maps below: in its order
    test_maps = load_code_maps(vq_path, "default", "test", n_buckets=prior.config.depth_buckets)
    middle = [torch.nonzero(test_maps.labels.cpu() == b)[:, 0] for b in bands]       # test slices of each band
    chosen = torch.stack([m[len(m) // 2] for m in middle])                        # (columns,) a middle one each
    grids = []
    for title, how, model in rows:                                               # sampled as its record was
        codes = sample(model, len(bands), labels=bands, seed=how["seed"], temperature=how["temperature"],
                       top_k=how["top_k"], support=support_for(model, how["support"]))
        grids.append((title, decode(vqvae, codes)))                               # (columns, 1, S, S) in [0, 1]
    first = records[0]                                                           # its test slices' own measures
    grids.append((row_title("the real slices below through this VQ-VAE: what a perfect prior could give", first,
                            "decoder"), decode(vqvae, test_maps.indices[chosen.to(test_maps.indices.device)])))
    grids.append((row_title("real test slices of these depth bands (never trained on)", first, "real"),
                  test.images[chosen].float() / 255))

    fig = Figure(figsize=(1.45 * len(bands), 1.75 * len(grids)), layout="constrained")
    for (title, images), sub in zip(grids, fig.subfigures(len(grids), 1)):
        sub.suptitle(title, fontsize=9)
        for c, ax in enumerate(sub.subplots(1, len(bands))):
            ax.imshow(images[c, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("PixelCNN priors on one VQ-VAE (built-in data), one sample per depth band, each sampled as its "
                 f"record was\ncolumns: depth bands {', '.join(str(int(b) + 1) for b in bands)} of {n_bands}, bottom "
                 "to top; row titles: the record's measures over 256 samples", fontsize=10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90, facecolor="white", metadata=figure_metadata("benchmark"))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
