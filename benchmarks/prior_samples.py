"""Samples of priors benchmarks/sample_quality.py trained on ONE VQ-VAE, side by side: figures/bench_prior_samples.png.

    python benchmarks/prior_samples.py        # needs the runs below (local: train them with the commands printed)

Each row is one prior of records in benchmarks/results (the gated PixelCNN of the class profile after 4 and 20
minutes of training, the masked-code prior after 4, 20 and 40, all on the codes of one 3-minute VQ-VAE, built-in
data), sampled as its record was (T = 0.8, top-k 32, codes restricted to the depth band's support, seed 0) but only
one slice per column: column c asks every prior for the same depth band. The last two rows are a real test slice of
that band (never trained on) through the VQ-VAE (its own codes decoded: a perfect prior's ceiling) and as it is.
Each row's title carries its record's measures over 256 samples (NN SSIM, two-sample accuracy, mirror symmetry),
so the figure and the numbers cannot drift apart: a prior whose checkpoint has another step count than its record
is refused. The trained priors live in runs/ (not committed); without them this script says which benchmark
command makes each one.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "runs" / "bench-sq-default-class-3min"
RESULTS = ROOT / "benchmarks" / "results"
SAMPLING = "--temperature 0.8 --top-k 32 --support depth"
# (row title, prior folder in RUN, record name, the command that trains the prior and writes the record)
ROWS = [
    ("PixelCNN, 4 min", "prior-class-4min-rerun", "sample-quality-default-position-t0.8-k32-depth-rerun",
     f"--variant position {SAMPLING} --tag rerun"),
    ("masked, 4 min", "prior-architecturemasked-channels32-n_layers2-4min-rerun",
     "sample-quality-default-masked-c32-t0.8-k32-depth-rerun", f"--variant masked-c32 {SAMPLING} --tag rerun"),
    ("PixelCNN, 20 min", "prior-class-20min-rerun", "sample-quality-default-position-3+20min-t0.8-k32-depth-rerun",
     f"--variant position --prior-minutes 20 {SAMPLING} --tag rerun"),
    ("masked, 20 min", "prior-architecturemasked-channels32-n_layers2-20min",
     "sample-quality-default-masked-c32-3+20min-t0.8-k32-depth", f"--variant masked-c32 --prior-minutes 20 {SAMPLING}"),
    ("masked, 40 min", "prior-architecturemasked-channels32-n_layers2-40min",
     "sample-quality-default-masked-c32-3+40min-t0.8-k32-depth", f"--variant masked-c32 --prior-minutes 40 {SAMPLING}"),
]


def row_title(title: str, record: dict, part: str = "samples") -> str:
    """``title`` and the record's measures of its ``part`` ("samples"; "decoder" or "real": the same test slices,
    through the VQ-VAE or as they are, scored like samples)."""
    s = record[part]
    steps = f" ({record['prior']['steps']} steps)" if part == "samples" else ""
    symmetry = f", symmetry {s['mirror_symmetry']:.3f}" if "mirror_symmetry" in s else ""   # measured since 12-05
    return (f"{title}{steps}: NN SSIM {s['nn_ssim_mean']:.3f}, "
            f"critic {s['two_sample_accuracy']:.3f}{symmetry}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--columns", type=int, default=8, help="depth bands shown, evenly from the lowest to the top")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from matplotlib.figure import Figure

    from vqvae_lib.checkpoint import load_checkpoint, load_prior, load_vqvae
    from vqvae_lib.codemaps import load_code_maps
    from vqvae_lib.data import load_dataset
    from vqvae_lib.plotting import figure_metadata
    from vqvae_lib.sampling import decode, sample, support_for

    missing = [f"python benchmarks/sample_quality.py --data default {command}"
               for _, folder, _, command in ROWS if not (RUN / folder / "prior.pt").exists()]
    if missing or not (RUN / "vqvae.pt").exists():
        print(f"missing trained priors in {RUN} (they are not committed); make them with:\n  "
              + "\n  ".join(missing or [ROWS[0][3]]), file=sys.stderr)
        return 1
    device = torch.device("cpu")
    vqvae = load_vqvae(RUN / "vqvae.pt", device)
    rows = []
    for title, folder, name, _ in ROWS:
        record = json.loads((RESULTS / f"{name}.json").read_text())
        path = RUN / folder / "prior.pt"
        step = load_checkpoint(path, map_location="cpu")["step"]
        if step != record["prior"]["steps"]:
            raise ValueError(f"{path} has {step} steps but its record {name}.json {record['prior']['steps']}: the run "
                             f"was trained again after the record; run its benchmark again")
        rows.append((row_title(title, record), record["sampling"],
                     load_prior(path, device, vqvae_path=RUN / "vqvae.pt")))
    last = record                                             # the 40-minute record: its test slices' own measures

    prior = rows[0][2]
    n_bands = prior.config.n_labels
    bands = torch.from_numpy(np.linspace(0, n_bands - 1, args.columns).round().astype(np.int64))   # (columns,)
    test = load_dataset("default", "test", 128)                                  # test_maps below: in its order
    test_maps = load_code_maps(RUN / "vqvae.pt", "default", "test", n_buckets=prior.config.depth_buckets)
    middle = [torch.nonzero(test_maps.labels.cpu() == b)[:, 0] for b in bands]       # test slices of each band
    chosen = torch.stack([m[len(m) // 2] for m in middle])                        # (columns,) a middle one each
    grids = []
    for title, how, model in rows:                                               # sampled as its record was
        codes = sample(model, len(bands), labels=bands, seed=how["seed"], temperature=how["temperature"],
                       top_k=how["top_k"], support=support_for(model, how["support"]))
        grids.append((title, decode(vqvae, codes)))                               # (columns, 1, S, S) in [0, 1]
    perfect = "the real slices below through this VQ-VAE: what a perfect prior could give"
    grids.append((row_title(perfect, last, "decoder"),
                   decode(vqvae, test_maps.indices[chosen.to(test_maps.indices.device)])))
    grids.append((row_title("real test slices of these depth bands (never trained on)", last, "real"),
                   test.images[chosen].float() / 255))

    fig = Figure(figsize=(1.45 * len(bands), 1.75 * len(grids)), layout="constrained")
    for (title, images), sub in zip(grids, fig.subfigures(len(grids), 1)):
        sub.suptitle(title, fontsize=9)
        for c, ax in enumerate(sub.subplots(1, len(bands))):
            ax.imshow(images[c, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
    bands_named = ", ".join(str(int(b) + 1) for b in bands)
    fig.suptitle("one 3-minute VQ-VAE (built-in data): the PixelCNN after 4 and 20 minutes, the masked prior after "
                 "4, 20 and 40\none sample per depth band (T 0.8, top-k 32, seed 0); columns: depth bands "
                 f"{bands_named} of {n_bands}, bottom to top\nrow titles: the record's measures over 256 samples",
                 fontsize=10)
    path = ROOT / "figures" / "bench_prior_samples.png"
    fig.savefig(path, dpi=90, facecolor="white", metadata=figure_metadata("benchmark"))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
