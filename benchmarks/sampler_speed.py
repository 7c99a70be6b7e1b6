"""Sampling speed of the PixelCNN prior: the naive reference sampler against the fast one.

    python benchmarks/sampler_speed.py [--profile class] [-n 16] [--threads 2] [--prior runs/NAME/prior.pt]

Without ``--prior``: a randomly initialised prior of the profile's size over the code maps of the
profile's VQ-VAE (``image_size / downsample`` squared, K codes, conditional on 4 labels); the speed does
not depend on the weights. Every step of the naive sampler is one full forward pass, the same cost at
every position, so ``--naive-rows R`` times it on the last R rows only (a completion of the rest) and
scales the time up to the whole map; the fast sampler is timed on the whole map, and on the same last R
rows to check that both samplers agree there (same seed). Writes a JSON record to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from vqvae_lib.config import PROFILES, get_profile
from vqvae_lib.pipeline import load_prior
from vqvae_lib.pixelcnn import GatedPixelCNN
from vqvae_lib.sampling import sample

ROOT = Path(__file__).resolve().parents[1]


sys.path.insert(0, str(Path(__file__).resolve().parent))
from vqvae_quality import git_commit, machine  # noqa: E402


def profile_prior(name: str) -> GatedPixelCNN:
    profile = get_profile(name)
    side = profile.image_size // profile.vqvae.downsample
    cfg = replace(profile.prior, codebook_size=profile.vqvae.codebook_size, n_labels=4)
    model = GatedPixelCNN(cfg).eval()
    model.latent_shape = (side, side)
    return model


def timed(model, n: int, naive: bool, rows: int | None = None) -> tuple[float, torch.Tensor]:
    """Seconds to sample ``n`` maps (only the last ``rows`` rows when given), and the samples."""
    labels = torch.arange(n) % model.config.n_labels if model.config.n_labels else None
    keep = model.latent_shape[0] - rows if rows else 0
    prompt = torch.zeros(model.latent_shape, dtype=torch.long)
    start = time.perf_counter()
    codes = sample(model, n, labels=labels, seed=0, naive=naive, prompt=prompt, keep_rows=keep)
    return time.perf_counter() - start, codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="class")
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prior", help="a trained prior checkpoint instead of a random one of the profile's size")
    parser.add_argument("--naive-rows", type=int, help="time the naive sampler on this many rows (default: all)")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_prior(args.prior, torch.device("cpu")) if args.prior else profile_prior(args.profile)
    timed(model, 2, naive=False)                                   # warm-up (allocator, oneDNN kernels)
    fast_seconds, fast = timed(model, args.n, naive=False)
    record = {"profile": args.profile, "prior": args.prior, "config": model.config.to_dict(),
              "latent_shape": list(model.latent_shape), "n": args.n, "threads": torch.get_num_threads(),
              "parameters": sum(p.numel() for p in model.parameters()), "fast_seconds": round(fast_seconds, 2)}
    if not args.skip_naive:
        rows = args.naive_rows or model.latent_shape[0]
        naive_seconds, naive = timed(model, args.n, naive=True, rows=rows)
        naive_seconds *= model.latent_shape[0] / rows
        if rows < model.latent_shape[0]:
            fast = timed(model, args.n, naive=False, rows=rows)[1]
        record.update(naive_seconds=round(naive_seconds, 2), naive_rows_timed=rows,
                      speedup=round(naive_seconds / fast_seconds, 1), identical=bool(torch.equal(fast, naive)))
    record.update(machine=machine(), commit=git_commit(), date=time.strftime("%Y-%m-%d %H:%M"))
    tag = "trained" if args.prior else args.profile
    out = ROOT / "benchmarks" / "results" / f"sampler-{tag}-n{args.n}-t{args.threads}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
