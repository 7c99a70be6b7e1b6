"""Sampling speed of the PixelCNN prior: the naive reference sampler against the fast one, and the whole
``python -m vqvae_lib sample`` command from start to end.

    python benchmarks/sampler_speed.py [--profile class] [-n 16] [--threads 2] [--prior runs/NAME/prior.pt]
                                       [--vqvae runs/NAME/vqvae.pt] [--command-runs 3] [--skip-naive]

Without ``--prior``: a randomly initialised prior of the profile's size over the code maps of the
profile's VQ-VAE (``image_size / downsample`` squared, K codes, conditional on 4 labels, with position biases);
the speed does not depend on the weights. Every step of the naive sampler is one full forward pass, the same cost at
every position, so ``--naive-rows R`` times it on the last R rows only (a completion of the rest) and
scales the time up to the whole map; the fast sampler is timed on the whole map, and on the same last R
rows to check that both samplers agree there (same seed).

The command: ``python -m vqvae_lib sample -n N`` on a VQ-VAE + prior pair, each run in a fresh process and
timed from its start to its end (``command_seconds``: every run; ``command_median_seconds``; the sampling and
decoding inside it, as the command reports them), after one untimed run that lists which heavy modules the command
loaded (``command_loads``); and the time of ``import vqvae_lib.cli`` alone in a fresh process
(``cli_import_seconds``). The pair: ``--prior`` and ``--vqvae`` (default:
``vqvae.pt`` beside the prior, a run folder's layout), else an untrained pair of the profile's sizes written to a
temporary folder as ``train-vqvae`` and ``train-prior`` write theirs (depth labels, a support that allows every
code): loading, sampling and decoding cost the same as a trained pair's. The command is printed and recorded
(with ``TMP`` for the temporary folder).
Writes a JSON record to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from vqvae_lib.checkpoint import checkpoint_fingerprint, load_prior, save_checkpoint, save_code_support
from vqvae_lib.config import PROFILES, get_profile
from vqvae_lib.pixelcnn import GatedPixelCNN
from vqvae_lib.sampling import sample
from vqvae_lib.vqvae import VQVAE

ROOT = Path(__file__).resolve().parents[1]
# modules whose import costs the command a noticeable time; the record says which of them it loaded
HEAVY_MODULES = ("torchvision", "torch._dynamo", "torchmetrics", "scipy", "matplotlib", "ipywidgets", "tqdm",
                 "vqvae_lib.pipeline", "vqvae_lib.data", "vqvae_lib.train", "vqvae_lib.sample_quality")
IMPORT_CLI = "import time; t = time.perf_counter(); import vqvae_lib.cli; print(time.perf_counter() - t)"
LIST_LOADS = ("import json, sys; from vqvae_lib.cli import main; code = main(sys.argv[1:]); "
              "print(json.dumps([m for m in {modules!r} if m in sys.modules])); sys.exit(code)")


sys.path.insert(0, str(Path(__file__).resolve().parent))
from vqvae_quality import SCHEMA, git_commit, machine  # noqa: E402


def profile_prior(name: str, n_labels: int = 4) -> GatedPixelCNN:
    profile = get_profile(name)
    side = profile.image_size // profile.vqvae.downsample
    cfg = replace(profile.prior, codebook_size=profile.vqvae.codebook_size, n_labels=n_labels, height=side,
                  width=side)
    model = GatedPixelCNN(cfg).eval()
    model.latent_shape = (side, side)
    return model


def untrained_pair(name: str, folder: Path) -> tuple[Path, Path]:
    """An untrained VQ-VAE + conditional prior of profile ``name``'s sizes, saved in ``folder`` as the training
    commands save theirs (checkpoints, the prior's code support and label counts): (vqvae path, prior path)."""
    profile = get_profile(name)
    vqvae_path, prior_path = folder / "vqvae.pt", folder / "prior.pt"
    vqvae = VQVAE(profile.vqvae)
    save_checkpoint({"meta": {"kind": "vqvae", "config": profile.vqvae.to_dict(), "image_size": profile.image_size},
                     "model": vqvae.state_dict()}, vqvae_path)
    n_labels = profile.prior.depth_buckets                 # the built-in data's labels: slice-depth bands
    prior = profile_prior(name, n_labels)
    save_checkpoint({"meta": {"kind": "prior", "config": prior.config.to_dict(),
                              "vqvae_fingerprint": checkpoint_fingerprint(vqvae_path), "vqvae_path": str(vqvae_path),
                              "latent_shape": list(prior.latent_shape),
                              "label_names": [f"depth {i}" for i in range(n_labels)], "label_kind": "depth"},
                     "model": prior.state_dict()}, prior_path)
    support = torch.ones(n_labels, *prior.latent_shape, prior.config.codebook_size, dtype=torch.bool)
    save_code_support(prior_path, support, key="untrained", label_counts=torch.ones(n_labels, dtype=torch.long))
    return vqvae_path, prior_path


def timed(model, n: int, naive: bool, rows: int | None = None) -> tuple[float, torch.Tensor]:
    """Seconds to sample ``n`` maps (only the last ``rows`` rows when given), and the samples."""
    labels = torch.arange(n) % model.config.n_labels if model.config.n_labels else None
    keep = model.latent_shape[0] - rows if rows else 0
    prompt = torch.zeros(model.latent_shape, dtype=torch.long)
    start = time.perf_counter()
    codes = sample(model, n, labels=labels, seed=0, naive=naive, prompt=prompt, keep_rows=keep)
    return time.perf_counter() - start, codes


def run_seconds(command: list[str]) -> tuple[float, str]:
    """Wall seconds of ``command`` in a fresh process, from the repository root, and its standard output."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def time_command(vqvae: Path, prior: Path, args, folder: Path) -> dict:
    """The whole sample command, ``args.command_runs`` times, and the import of ``vqvae_lib.cli``."""
    options = ["sample", "--vqvae", str(vqvae), "--prior", str(prior), "-n", str(args.n),
               "--profile", args.profile, "--threads", str(args.threads), "--device", "cpu",
               "--out", str(folder / "samples.png")]
    command = [sys.executable, "-m", "vqvae_lib", *options]
    print("command:", shlex.join(command), flush=True)
    loads = json.loads(run_seconds([sys.executable, "-c", LIST_LOADS.format(modules=HEAVY_MODULES),
                                    *options])[1].splitlines()[-1])                   # also warms the file cache
    runs = [run_seconds(command) for _ in range(args.command_runs)]
    seconds = [s for s, _ in runs]
    report = json.loads(runs[-1][1].splitlines()[-1])           # the command's own timing of its last run
    imports = [float(run_seconds([sys.executable, "-c", IMPORT_CLI])[1]) for _ in range(args.command_runs)]
    return {"command": shlex.join(["python", *command[1:]]).replace(str(folder), "TMP"),
            "command_seconds": [round(s, 2) for s in seconds],
            "command_median_seconds": round(statistics.median(seconds), 2),
            "command_sample_seconds": report["sample_seconds"], "command_decode_seconds": report["decode_seconds"],
            "command_loads": loads,
            "cli_import_seconds": [round(s, 2) for s in imports],
            "cli_import_median_seconds": round(statistics.median(imports), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="class")
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prior", help="a trained prior checkpoint instead of a random one of the profile's size")
    parser.add_argument("--vqvae", help="the trained VQ-VAE of --prior, for the command (default: beside it)")
    parser.add_argument("--naive-rows", type=int, help="time the naive sampler on this many rows (default: all)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--command-runs", type=int, default=3, help="timed runs of the whole command (0: none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_prior(args.prior, torch.device("cpu")) if args.prior else profile_prior(args.profile)
    timed(model, 2, naive=False)                                   # warm-up (allocator, oneDNN kernels)
    fast_seconds, fast = timed(model, args.n, naive=False)
    record = {"schema": SCHEMA, "profile": args.profile, "prior": args.prior, "config": model.config.to_dict(),
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
    if args.command_runs > 0:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if args.prior:
                vqvae = Path(args.vqvae) if args.vqvae else Path(args.prior).with_name("vqvae.pt")
                pair, prior = {"vqvae": str(vqvae), "prior": args.prior}, Path(args.prior)
            else:
                vqvae, prior = untrained_pair(args.profile, folder)
                pair = f"untrained {args.profile}-profile pair"
            record.update(pair=pair, **time_command(vqvae, prior, args, folder))
        print(f"whole command: {record['command_median_seconds']} s (median of {args.command_runs}), import "
              f"vqvae_lib.cli: {record['cli_import_median_seconds']} s; loads {record['command_loads']}", flush=True)
    record.update(machine=machine(), commit=git_commit(), date=time.strftime("%Y-%m-%d %H:%M"))
    tag = "trained" if args.prior else args.profile
    out = ROOT / "benchmarks" / "results" / f"sampler-{tag}-n{args.n}-t{args.threads}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
