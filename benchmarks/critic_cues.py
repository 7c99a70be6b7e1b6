"""What gives the class samples away? The two-sample critic (``sample_quality.two_sample_accuracies``, three critics)
on pairs of image sets that each remove one possible cue, for the notebooks' class run on the built-in data, or for
another run (a folder with vqvae.pt and prior.pt, such as one of benchmarks/sample_quality.py's).

    python benchmarks/critic_cues.py            # after notebooks 02 and 04 (or the class benchmark) trained runs/
    python benchmarks/critic_cues.py --data kaggle --run runs/sample-quality/kaggle-class-10min/prior-class-4min

Pairs: samples vs the real slices' reconstructions (is it the decoder?), reconstructions vs real slices (the
decoder alone), real slices blurred (Gaussian, sigma 0.5 and 1 pixel) vs other real slices (how sensitive is the
critic to sharpness?), samples vs real slices both blurred (sigma 1: without fine texture; sigma 3: only the coarse
layout), samples whose brain-pixel intensities are quantile-mapped onto the real slices' (without the intensity
histogram), samples whose every slice's brain intensities are moved to the mean and spread of a random real slice
of the same depth band (without the per-slice brightness and contrast; real slices moved so are its control), and
both sets reduced to their brain masks (pixels above the
brain threshold: the outline alone; the reconstructions' masks as the control: what the decoder alone changes
there). Then simple measures, one at a time (``sample_quality.slice_measures``: outline size, position,
roughness, symmetry, brain intensity mean and spread): their means and how well each alone tells samples, or the
reconstructions, from the real slices (``separability``, 0.5 = not at all). 256 samples with the profile's
sampling settings (seed 0); the real test slices split in two halves (seed 0) where two real sets are needed.
Writes benchmarks/results/critic-cues-default-class.json (another run: critic-cues-DATA-RUN.json).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from vqvae_quality import KAGGLE, SCHEMA, git_commit, machine  # noqa: E402


def blur(images, sigma: float):
    """Separable Gaussian blur (7 taps, replicated edges) of (N, 1, S, S) float images."""
    import torch
    import torch.nn.functional as F

    taps = torch.arange(-3, 4, dtype=torch.float32)
    kernel = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    images = F.conv2d(F.pad(images, (3, 3, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 7))
    return F.conv2d(F.pad(images, (0, 0, 3, 3), mode="replicate"), kernel.view(1, 1, 7, 1))


def intensity_matched(images, reference, threshold: float):
    """``images`` with their brain pixels (above ``threshold``) mapped onto the intensity quantiles of
    ``reference``'s brain pixels (one global map)."""
    import torch

    ref = reference[reference > threshold].sort().values
    src = images[images > threshold].sort().values
    out = images.clone()
    mask = out > threshold
    ranks = torch.searchsorted(src, out[mask]).clamp(max=len(src) - 1).float() / (len(src) - 1)
    out[mask] = ref[(ranks * (len(ref) - 1)).long()]
    return out


def slice_standardised(images, labels, reference, reference_labels, threshold: float, seed: int = 0):
    """``images`` (N, 1, S, S) with each slice's brain pixels (above ``threshold``) moved to the brain intensity
    mean and spread of one ``reference`` slice of the same label (depth band), drawn at random (seeded): per slice,
    not one global map as ``intensity_matched``. The background stays; brain stays above ``threshold``."""
    import torch

    from vqvae_lib.sample_quality import as_float, brain_intensity

    images, reference = as_float(images), as_float(reference)
    own = brain_intensity(images[:, 0], images[:, 0] > threshold)                 # (N,), (N,)
    target = brain_intensity(reference[:, 0], reference[:, 0] > threshold)
    g = torch.Generator().manual_seed(seed)
    pick = torch.empty(len(images), dtype=torch.long)
    for label in labels.unique():                                                # a reference slice of that band
        pool = (reference_labels == label).nonzero().flatten()
        if len(pool) == 0:
            raise ValueError(f"no reference slice has label {int(label)}")
        wanted = (labels == label).nonzero().flatten()
        pick[wanted] = pool[torch.randint(len(pool), (len(wanted),), generator=g)]
    mean, spread = (own[0][:, None, None, None], own[1][:, None, None, None].clamp(min=1e-6))
    to_mean, to_spread = (target[0][pick][:, None, None, None], target[1][pick][:, None, None, None])
    moved = (images - mean) / spread * to_spread + to_mean
    return torch.where(images > threshold, moved.clamp(threshold + 1e-3, 1.0), images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("default", "kaggle"), default="default")
    parser.add_argument("--run", type=Path, help="folder with vqvae.pt (or its parent's) and prior.pt; default: the "
                                                   "notebooks' class-profile run for --data")
    args = parser.parse_args(argv)

    import torch

    from vqvae_lib import pipeline
    from vqvae_lib.checkpoint import load_prior, load_vqvae
    from vqvae_lib.codemaps import load_code_maps
    from vqvae_lib.config import get_profile
    from vqvae_lib.data import load_dataset
    from vqvae_lib.sample_quality import (
        BRAIN_THRESHOLD,
        CRITIC,
        as_float,
        separability,
        slice_measures,
        two_sample_accuracies,
    )
    from vqvae_lib.sampling import decode, default_labels, sample, support_for

    profile = get_profile("class")
    source = str(KAGGLE) if args.data == "kaggle" else "default"
    run = pipeline.default_run_dir(profile, source) if args.run is None else args.run.resolve()
    vq_path = run / "vqvae.pt" if (run / "vqvae.pt").exists() else run.parent / "vqvae.pt"  # a benchmark's prior
    if not (run / "prior.pt").exists() or not vq_path.exists():                              # sits below its VQ-VAE
        sys.exit(f"no prior.pt and vqvae.pt in {run} (or vqvae.pt in its parent): run notebooks 02 and 04 (or "
                 "benchmarks/sample_quality.py) first")
    cpu = torch.device("cpu")
    vqvae, prior = load_vqvae(vq_path, cpu), load_prior(run / "prior.pt", cpu)
    s = profile.sampling
    labels = default_labels(prior, 256)                                                          # (256,)
    samples = decode(vqvae, sample(prior, 256, labels=labels, seed=0, temperature=s.temperature,
                                   top_k=s.top_k, support=support_for(prior, s.support)))       # (256, 1, S, S)
    real = as_float(load_dataset(source, "test", profile.image_size).images)
    test_maps = load_code_maps(vq_path, source, "test", n_buckets=prior.config.depth_buckets)
    recon = decode(vqvae, test_maps.indices)                                                    # one per real slice
    a, b = torch.randperm(len(real), generator=torch.Generator().manual_seed(0)).tensor_split(2)  # two real halves
    conditional = labels is not None and test_maps.labels is not None                 # else one band for all
    band = labels if conditional else torch.zeros(len(samples), dtype=torch.long)            # (256,)
    real_band = test_maps.labels if conditional else torch.zeros(len(real), dtype=torch.long)  # (R,)
    standardised = slice_standardised(samples, band, real, real_band, BRAIN_THRESHOLD)
    pairs = {
        "samples vs real": (samples, real),
        "samples vs reconstructions": (samples, recon[b]),
        "reconstructions vs real": (recon[a], real[b]),
        "real blurred sigma 0.5 vs real": (blur(real[a], 0.5), real[b]),
        "real blurred sigma 1 vs real": (blur(real[a], 1.0), real[b]),
        "samples blurred sigma 1 vs real blurred sigma 1": (blur(samples, 1.0), blur(real, 1.0)),
        "samples blurred sigma 3 vs real blurred sigma 3": (blur(samples, 3.0), blur(real, 3.0)),
        "samples intensity-matched vs real": (intensity_matched(samples, real, BRAIN_THRESHOLD), real),
        "samples standardised per slice vs real": (standardised, real),
        "real standardised per slice vs real": (slice_standardised(real[a], real_band[a], real[b], real_band[b],
                                                                   BRAIN_THRESHOLD), real[b]),
        "samples' brain masks vs real brain masks": ((samples > BRAIN_THRESHOLD).float(),
                                                     (real > BRAIN_THRESHOLD).float()),
        "reconstructions' brain masks vs real brain masks": ((recon[a] > BRAIN_THRESHOLD).float(),
                                                             (real[b] > BRAIN_THRESHOLD).float()),
        "real vs real": (real[a], real[b]),
    }
    results = {}
    for name, (x, y) in pairs.items():
        started = time.perf_counter()
        runs = two_sample_accuracies(x, y, CRITIC["repeats"], seed=0)
        results[name] = {"two_sample_accuracy": sum(runs) / len(runs), "runs": runs, "n": [len(x), len(y)]}
        print(f"{name:>48}: {results[name]['two_sample_accuracy']:.3f} {[round(r, 3) for r in runs]} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    sets = {"samples": slice_measures(samples), "reconstructions": slice_measures(recon), "real": slice_measures(real),
            "standardised samples": slice_measures(standardised)}
    measures = {name: {**{f"{kind}_mean": float(values[name].mean()) for kind, values in sets.items()},
                       "samples_separability": separability(sets["samples"][name], sets["real"][name]),
                       "reconstructions_separability": separability(sets["reconstructions"][name],
                                                                    sets["real"][name]),
                       "standardised_samples_separability": separability(sets["standardised samples"][name],
                                                                         sets["real"][name])}
                for name in sets["real"]}
    for name, m in measures.items():
        print(f"{name:>24}: samples {m['samples_mean']:.3f} (separability {m['samples_separability']:.3f}), "
              f"reconstructions {m['reconstructions_mean']:.3f} ({m['reconstructions_separability']:.3f}), "
              f"real {m['real_mean']:.3f}")
    steps = {"vqvae_steps": json.loads((vq_path.parent / "history.json").read_text())["steps"],
             "prior_steps": json.loads((run / "prior_history.json").read_text())["steps"]}
    where = run.relative_to(ROOT) if run.is_relative_to(ROOT) else run
    name = (f"critic-cues-{args.data}-class" if args.run is None
            else f"critic-cues-{args.data}-{'-'.join(where.parts[-2:]) if vq_path.parent != run else where.name}")
    record = {"schema": SCHEMA, "name": name, "data": args.data, "run": str(where), **steps,
              "sampling": s.to_dict(), "critic": CRITIC, "pairs": results, "measures": measures,
              "commit": git_commit(),
              "machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
