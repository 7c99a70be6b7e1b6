"""Reconstruction quality against training time, through the CLI (the stable contract).

    python benchmarks/vqvae_quality.py --data kaggle --minutes 10 --model ours
    python benchmarks/vqvae_quality.py --data kaggle --minutes 10 --model reference
    python benchmarks/vqvae_quality.py --data kaggle --minutes 10 --model misha
    python benchmarks/vqvae_quality.py --data kaggle --profile class          # the class profile's own budget

Trains from scratch into runs/bench-..., evaluates on the held-out split, and writes one JSON record to
benchmarks/results/ with the scores, the validation SSIM along the way (against training time), the
training throughput, data-loading times, the machine and the commit.
``--data kaggle`` is ../shared/data/oasis-kaggle/train (real OASIS-derived slices; seeded 80/10/10 split
by file); ``default`` is the built-in MNI152 set (test split).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from vqvae_lib.config import RECON_LOSSES
from vqvae_lib.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
KAGGLE = ROOT.parent / "shared" / "data" / "oasis-kaggle" / "train"
SCHEMA = 1   # the layout of every record in benchmarks/results/; benchmarks/report.py refuses a record without it


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "cpu_bf16_units": bf16_units(),
            "torch": torch.__version__, "python": platform.python_version()}


def bf16_units() -> list[str]:
    """The CPU's bf16 instruction sets (Linux), which decide whether bf16 autocast pays on a CPU."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return sorted(flags & {"amx_bf16", "avx512_bf16"})


def git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=ROOT).stdout.strip()
    return (done.stdout.strip() + ("+changes" if dirty else "")) if done.returncode == 0 else None


def ssim_curve(run_dir: Path) -> list[list[float]]:
    """[training seconds, validation SSIM] at every validation of the run (256 held-out slices each)."""
    history = json.loads((run_dir / "history.json").read_text())["history"]
    seconds = dict(zip(history["step"], history["seconds"]))
    return [[round(seconds[step], 1), round(ssim, 4)] for step, ssim in zip(history["val_step"],
                                                                            history["val_ssim_mean"])]


def data_loading(source: str, image_size: int) -> dict:
    """Seconds to decode the training split from files, then to reopen it from the cache."""
    from vqvae_lib.data import load_dataset

    start = time.perf_counter()
    train = load_dataset(source, "train", image_size, cache=False)
    cold = time.perf_counter() - start
    load_dataset(source, "train", image_size)  # make sure the cache exists
    start = time.perf_counter()
    load_dataset(source, "train", image_size)
    return {"train_slices": len(train), "decode_seconds": round(cold, 2),
            "cached_seconds": round(time.perf_counter() - start, 3)}


def run_cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "vqvae_lib", *args], check=True, capture_output=True, text=True,
                         cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="kaggle", help="kaggle | default | a path")
    parser.add_argument("--model", choices=("ours", "reference", "misha"), default="ours")
    parser.add_argument("--profile", default="class")
    parser.add_argument("--minutes", type=float, help="training budget (default: the profile's)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--device", help="cuda | mps | cpu")
    parser.add_argument("--name", help="result name (default from the arguments)")
    parser.add_argument("--eval-every", type=int, default=250, help="validation SSIM every N steps (the curve)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="passed to train-vqvae")
    parser.add_argument("--channels-last", action="store_true", help="passed to train-vqvae")
    parser.add_argument("--recon-loss", choices=RECON_LOSSES, help="passed to train-vqvae (ours only)")
    args = parser.parse_args()

    source = str(KAGGLE) if args.data == "kaggle" else args.data
    if args.data == "kaggle" and not KAGGLE.is_dir():
        sys.exit(f"{KAGGLE} is not here; pass --data default or a path")
    budget = f"{args.minutes:g}min" if args.minutes else f"{args.profile}-budget"
    name = args.name or f"{args.model}-{Path(args.data).name}-{args.image_size}-{budget}"
    run_dir = ROOT / "runs" / f"bench-{name}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a benchmark trains from scratch

    record = {"schema": SCHEMA, "name": name, "data": args.data, "model": args.model, "profile": args.profile,
              "precision": args.precision or "auto", "channels_last": args.channels_last,
              "image_size": args.image_size, "machine": machine(), "loading": data_loading(source, args.image_size)}
    train_args = ["train-vqvae", "--data", source, "--image-size", str(args.image_size), "--profile", args.profile,
                  "--out", str(run_dir), "--no-progress", "--eval-every", str(args.eval_every)]
    if args.minutes:
        train_args += ["--minutes", str(args.minutes)]
    if args.model in ("reference", "misha"):
        train_args += ["--model", args.model]
    if args.device:
        train_args += ["--device", args.device]
    if args.precision:
        train_args += ["--precision", args.precision]
    if args.channels_last:
        train_args += ["--channels-last"]
    if args.recon_loss:
        train_args += ["--recon-loss", args.recon_loss]
    record["train"] = run_cli(*train_args)
    record["recon_loss"] = load_checkpoint(run_dir / "vqvae.pt")["meta"]["config"].get("recon_loss", "mse")
    record["eval"] = run_cli("evaluate", "--checkpoint", str(run_dir / "vqvae.pt"), "--data", source, "--json",
                             *(["--device", args.device] if args.device else []))
    record["curve"] = ssim_curve(run_dir)
    record["date"], record["commit"] = time.strftime("%Y-%m-%d %H:%M"), git_commit()
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.write_text(json.dumps(record, indent=1))
    ev, tr = record["eval"], record["train"]
    print(f"| {name} | {ev['ssim_mean']:.4f} | {ev['psnr_mean']:.2f} | {ev['active_codes']} | "
          f"{tr['steps']} | {tr['images_per_second']:.0f} | {ev['n_images']} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
