"""Sample quality of a VQ-VAE + PixelCNN prior variant, against held-out real slices (and their ceiling).

    python benchmarks/sample_quality.py --data default --variant class              # the class profile: 3 + 4 min
    python benchmarks/sample_quality.py --data kaggle --variant class
    python benchmarks/sample_quality.py --data default --variant no-position        # the prior without position
    python benchmarks/sample_quality.py --data default --variant position --prior-minutes 20
    python benchmarks/sample_quality.py --data default --variant class --top-k 32   # another sampling setting
    python benchmarks/sample_quality.py --data default --variant course             # the course models, loaded

Every variant is the class profile (``get_profile("class")``) with the changes ``VARIANTS`` names, sampled with the
profile's settings (``profile.sampling``) unless ``--temperature`` / ``--top-k`` / ``--support`` say otherwise.
Trains (or reloads, when the same settings already ran) the variant's VQ-VAE in runs/sample-quality/<data>-<vqvae>/
and its prior in a sub-folder (the class variant at the class budget uses the notebooks' own runs in
runs/class-<data>/); draws ``-n`` samples (labels in the training slices' proportions, or each in turn with
``--labels each``; seed 0), decodes them and scores them with ``sample_quality.measure`` against the test split (held
out: never trained or validated on), beside the same measures for real test slices (``real_ceiling``) and for their
reconstructions (the same slices through the VQ-VAE: the ceiling of a perfect prior under this decoder, "decoder" in
the record). Writes benchmarks/results/sample-quality-<data>-<variant>[-<budget>]-<sampling>.json and a grid of the
first 32 samples to build/bench/<same name>.png (look at it).
``--data kaggle`` is ../shared/data/oasis-kaggle/train (real OASIS-derived slices; seeded 80/10/10 split by
file, so neighbouring slices of one subject sit on both sides: the real ceiling is inflated there);
``default`` is the built-in MNI152 set (split by subject).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from vqvae_lib.config import get_profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from vqvae_quality import KAGGLE, SCHEMA, git_commit, machine  # noqa: E402

PROFILE = get_profile("class")   # every variant starts from it; its sampling settings are the defaults

# name -> (changes to the class profile's VQVAEConfig, to its PixelCNNConfig, to its prior_train, to its vqvae_train)
VARIANTS = {
    "class": ({}, {}, {}, {}),               # the class profile; at the class budget: the notebooks' own runs
    "course": ({}, {}, {}, {}),              # the course models of pretrained/default/ (built-in data), loaded
    "position": ({}, {}, {}, {}),            # the same settings in runs/sample-quality/: a second training of them
    "no-position": ({}, {"position": False}, {}, {}),
    "k128": ({"codebook_size": 128}, {}, {}, {}),
    "ds8": ({"downsample": 8}, {}, {}, {}),
    "prior-c64": ({}, {"channels": 64}, {}, {}),
    "prior-c48": ({}, {"channels": 48}, {}, {}),     # a wider prior for longer budgets
    "prior-bf16": ({}, {}, {"precision": "bf16"}, {}),
    "bf16": ({}, {}, {"precision": "bf16"}, {"precision": "bf16"}),   # VQ-VAE and prior in bf16 autocast
    "prior-b4": ({}, {}, {"batch_size": 4}, {}),      # the prior with batch 4: twice the steps in the same time
    "prior-k3": ({}, {"kernel_size": 3}, {}, {}),     # 3 x 3 gated layers: half the compute, twice the steps
    "prior-k3-l20": ({}, {"kernel_size": 3, "n_layers": 20}, {}, {}),  # ... and twice the layers: same reach as k5
    "depth4": ({}, {"depth_buckets": 4}, {}, {}),     # 4 depth bands of 9 slices (the profile: 12 of 3)
    "depth9": ({}, {"depth_buckets": 9}, {}, {}),     # 9 depth bands of 4 slices
    "depth18": ({}, {"depth_buckets": 18}, {}, {}),   # 18 bands of 2 slices (160 maps per band)
}


def tag(changes: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in sorted(changes.items())) or "class"


def vqvae_changes(config, base) -> dict:
    """The fields in which a VQVAEConfig differs from the class profile's: what names its run folder."""
    base = base.to_dict()
    return {k: v for k, v in config.to_dict().items() if base[k] != v}


def sampling_name(temperature: float, top_k: int | None, support: str, radius: int = 0) -> str:
    """The part of a record's name that says how it was sampled: "t0.7-depth", "t0.7-k32-depth", "t1-none-r1"."""
    return f"t{temperature:g}" + (f"-k{top_k}" if top_k else "") + f"-{support}" + (f"-r{radius}" if radius else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("default", "kaggle"), default="default")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="class")
    parser.add_argument("--vqvae-minutes", type=float, default=PROFILE.vqvae_train.minutes)
    parser.add_argument("--prior-minutes", type=float, default=PROFILE.prior_train.minutes)
    parser.add_argument("-n", type=int, default=256, help="samples to draw and score")
    parser.add_argument("--temperature", type=float, default=PROFILE.sampling.temperature)
    parser.add_argument("--top-k", type=int, default=PROFILE.sampling.top_k, help="default: the profile's (none); "
                        "0: none")
    parser.add_argument("--support", choices=("none", "position", "label", "depth"), default=PROFILE.sampling.support,
                        help="draw only the codes the training maps have at each position (of the sample's label); "
                             "'none': any code")
    parser.add_argument("--support-radius", type=int, default=PROFILE.sampling.support_radius,
                        help="... or within this many positions")
    parser.add_argument("--labels", choices=("training", "each"), default="training",
                        help="a conditional prior's sample labels: in the training slices' proportions (default, as "
                             "the CLI's sample), or each label in turn ('each')")
    parser.add_argument("--seed", type=int, default=0,
                        help="sampling seed, and the seed of the measures (pairs, critic folds); another seed is a "
                             "second draw of the same settings: the run-to-run spread")
    parser.add_argument("--tag", help="appended to the record's name and to the prior's run folder: a second training "
                                      "of the same prior settings (on the same VQ-VAE) without overwriting the first "
                                      "record or reloading its prior")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    top_k = args.top_k or None

    import torch

    from vqvae_lib import pipeline, plotting
    from vqvae_lib.codemaps import load_code_maps
    from vqvae_lib.data import load_dataset
    from vqvae_lib.prior import evaluate_prior
    from vqvae_lib.sample_quality import CRITIC, measure, real_ceiling
    from vqvae_lib.sampling import decode, default_labels, sample, support_for
    from vqvae_lib.utils import get_device

    if args.threads:
        torch.set_num_threads(args.threads)
    source = str(KAGGLE) if args.data == "kaggle" else "default"
    vq_changes, prior_changes, train_changes, vq_train_changes = VARIANTS[args.variant]
    profile, device = PROFILE, get_device()
    vq_cfg = replace(profile.vqvae, **vq_changes)
    vq_train = replace(profile.vqvae_train, minutes=args.vqvae_minutes, **vq_train_changes)
    prior_cfg = replace(profile.prior, **prior_changes)
    prior_train = replace(profile.prior_train, minutes=args.prior_minutes, **train_changes)
    vq_tag = tag({**vqvae_changes(vq_cfg, profile.vqvae), **vq_train_changes})
    vq_dir = ROOT / "runs" / "sample-quality" / f"{args.data}-{vq_tag}-{args.vqvae_minutes:g}min"
    prior_dir = vq_dir / (f"prior-{tag({**prior_changes, **train_changes})}-{args.prior_minutes:g}min"
                          + (f"-{args.tag}" if args.tag else ""))
    if (args.variant, vq_train, prior_train) == ("class", profile.vqvae_train, profile.prior_train):
        vq_dir = prior_dir = pipeline.default_run_dir(profile, source)  # the notebooks' own class-profile runs

    started = time.perf_counter()
    if args.variant == "course":   # nothing trains: the course models, as the notebooks load them
        if args.data != "default" or args.tag or (args.vqvae_minutes, args.prior_minutes) != (
                PROFILE.vqvae_train.minutes, PROFILE.prior_train.minutes):
            parser.error("--variant course loads the course models (built-in data, trained by steps): no --data "
                         "kaggle, --tag or --*-minutes")
        profile = get_profile("pretrained")
        vq_train, prior_train = profile.vqvae_train, profile.prior_train
        vq_dir = prior_dir = pipeline.default_run_dir(profile, source)
        _, vq = pipeline.load_or_train_vqvae(profile, source)
        _, prior_fit = pipeline.load_or_train_prior(profile, source)
    else:
        vq = pipeline.train_vqvae(source, vq_dir, vq_cfg, vq_train, profile.image_size, device=device, progress=False)
        prior_fit = pipeline.train_prior(vq_dir / "vqvae.pt", source, prior_dir, prior_cfg, prior_train,
                                         device=device, progress=False)
    vqvae, prior = vq.model, prior_fit.model
    recon = pipeline.evaluation_report(vqvae, source, "test", profile.image_size)

    test_maps = load_code_maps(vq_dir / "vqvae.pt", source, "test", n_buckets=prior_cfg.depth_buckets, device=device)
    train_maps = load_code_maps(vq_dir / "vqvae.pt", source, "train", n_buckets=prior_cfg.depth_buckets,
                                device=device)
    test_bits = evaluate_prior(prior, test_maps.indices, test_maps.labels if prior.config.n_labels else None)

    n_labels = prior.config.n_labels
    labels = (torch.arange(args.n) % n_labels if n_labels and args.labels == "each"
              else default_labels(prior, args.n))                         # (n,) or None
    support = support_for(prior, args.support, args.support_radius)
    t0 = time.perf_counter()
    sample(prior, 16, labels=None if labels is None else labels[:16], seed=1, temperature=args.temperature,
           top_k=top_k, support=support)
    seconds_16 = time.perf_counter() - t0
    codes = sample(prior, args.n, labels=labels, seed=args.seed, temperature=args.temperature, top_k=top_k,
                   support=support)
    samples = decode(vqvae, codes)                                               # (n, 1, S, S) in [0, 1]

    train = load_dataset(source, "train", profile.image_size)
    test = load_dataset(source, "test", profile.image_size)
    depth = train_maps.label_kind == "depth" and labels is not None
    scored = time.perf_counter()
    report = measure(samples, test.images, train.images, train_labels=train_maps.labels if depth else None,
                     requested_labels=labels if depth else None, seed=args.seed)
    real_options = {"n": min(args.n, len(test.images) // 2), "train_labels": train_maps.labels if depth else None,
                    "real_labels": test_maps.labels if depth else None, "seed": 0}
    ceiling = real_ceiling(test.images, train.images, **real_options)
    # the same real slices through the VQ-VAE (their own code maps, decoded): what a perfect prior would reach
    decoder = real_ceiling(test.images, train.images, stand_ins=decode(vqvae, test_maps.indices), **real_options)
    scoring_seconds = time.perf_counter() - scored

    name = f"sample-quality-{args.data}-{args.variant}"
    if args.variant != "course" and (args.vqvae_minutes, args.prior_minutes) != (profile.vqvae_train.minutes,
                                                                               profile.prior_train.minutes):
        name += f"-{args.vqvae_minutes:g}+{args.prior_minutes:g}min"
    name += "-" + sampling_name(args.temperature, top_k, args.support, args.support_radius)
    if args.labels == "each" and n_labels:
        name += "-each"
    if args.seed:
        name += f"-seed{args.seed}"
    if args.tag:
        name += f"-{args.tag}"
    grid = plotting.image_grid(samples[:32], ncols=8, size=1.3,
                               suptitle=f"{args.data}, {args.variant}: samples 1-32 of {args.n}")
    grid_path = ROOT / "build" / "bench" / f"{name}.png"
    grid_path.parent.mkdir(parents=True, exist_ok=True)
    grid.savefig(grid_path, dpi=80, facecolor="white")
    run = prior_dir.relative_to(ROOT) if prior_dir.is_relative_to(ROOT) else prior_dir
    record = {
        "schema": SCHEMA, "name": name, "data": args.data, "variant": args.variant, "tag": args.tag,
        "source": source, "run": str(run),   # the prior's folder (its VQ-VAE: vqvae.pt there or in its parent)
        "split_kind": test.split_kind, "scored_on": f"test split ({len(test)} slices)",
        # minutes: the budget; for the course models (trained by steps) what their steps took
        "vqvae": {"config": vqvae.config.to_dict(), "minutes": vq_train.minutes or round(vq.train_seconds / 60, 1),
                  "steps": vq.step,
                  "precision": vq_train.precision,
                  "train_seconds": round(vq.train_seconds, 1), "test": recon},
        "prior": {"config": prior.config.to_dict(), "steps": prior_fit.step,
                  "minutes": prior_train.minutes or round(prior_fit.train_seconds / 60, 1),
                  "train_seconds": round(prior_fit.train_seconds, 1), "precision": prior_train.precision,
                  "test_bits_per_code": test_bits["bits_per_code"],
                  # the training loss at the end (mean of the last 100 steps): against val / test, how far it overfits
                  "train_bits_per_code": sum(prior_fit.history["bits_per_code"][-100:])
                  / len(prior_fit.history["bits_per_code"][-100:]),
                  "val_bits_per_code": prior_fit.history.get("val_bits_per_code", [None])[-1]},
        "sampling": {"n": args.n, "temperature": args.temperature, "top_k": top_k, "seed": args.seed,
                     "support": args.support, "support_radius": args.support_radius,
                     "labels": (args.labels if n_labels else None),
                     "label_counts": (torch.bincount(labels, minlength=n_labels).tolist() if n_labels else None),
                     "seconds_for_16": round(seconds_16, 2)},
        "samples": report.summary(), "real": ceiling.summary(), "critic": CRITIC,
        "decoder": decoder.summary(),      # the real slices' reconstructions scored like samples
        "scoring_seconds": round(scoring_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1), "grid": str(grid_path.relative_to(ROOT)),
        "commit": git_commit(), "machine": machine(), "device": str(device),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({"record": str(out.relative_to(ROOT)), "samples": record["samples"], "real": record["real"],
                      "decoder": record["decoder"], "recon_ssim": recon["ssim_mean"],
                      "test_bits_per_code": test_bits["bits_per_code"],
                      "vqvae_steps": vq.step, "prior_steps": prior_fit.step}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
