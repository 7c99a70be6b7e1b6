"""Training throughput (images/s for the VQ-VAE, code maps/s for the prior) through the CLI, the way a user
runs it: one process, the speed options one at a time, and ``torchrun`` with several processes.

    python benchmarks/throughput.py --data kaggle                       # CPU: every variant below
    python benchmarks/throughput.py --data kaggle --device cuda --nproc 1 2 4   # on a GPU machine

Variants: fp32 (the baseline), ``--channels-last``, ``--compile``, ``--precision bf16`` (bf16 autocast), both
bf16 and channels_last, one
process with the batch of all ranks together, and torchrun with N processes (same batch per process).
Each run trains the class profile's models at 128x128 for ``--steps`` steps from scratch; the rate is
taken over the second half of the steps (after warm-up and compilation) from the per-step training
clock in history.json. Every variant runs ``--repeats`` times (the record keeps each rate, and their
mean). Writes benchmarks/results/throughput-<device>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from vqvae_quality import KAGGLE, ROOT, SCHEMA, git_commit, machine


def steady_rate(history: dict, batch: int, processes: int) -> float:
    """Examples per second of training time over the second half of the steps."""
    seconds = history["seconds"]
    half = len(seconds) // 2
    steps = len(seconds) - half
    return steps * batch * processes / (seconds[-1] - seconds[half - 1])


def train(kind: str, run_dir: Path, source: str, steps: int, batch: int, device: str, options: list[str],
          processes: int, threads: int, torchrun: bool) -> dict:
    """One training run from scratch through the CLI (under torchrun when asked) -> its record."""
    launcher = [sys.executable, "-m", "vqvae_lib"]
    if torchrun:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                    "-m", "vqvae_lib"]
    command = [*launcher, kind, "--data", source, "--profile", "class", "--steps", str(steps),
               "--batch-size", str(batch), "--out", str(run_dir), "--device", device, "--threads", str(threads),
               "--no-progress", *options]
    if kind == "train-vqvae":
        command += ["--image-size", "128"]
    else:
        command += ["--vqvae", str(run_dir.parent / "prior-codes" / "vqvae.pt")]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    history = json.loads((run_dir / ("history.json" if kind == "train-vqvae" else "prior_history.json")).read_text())
    return {"options": options, "processes": processes, "threads_per_process": threads, "batch_per_process": batch,
            "steps": summary["steps"], "wall_seconds": round(time.perf_counter() - started, 1),
            "rate": round(steady_rate(history["history"], batch, processes), 1),
            "rate_overall": summary.get("images_per_second", summary.get("maps_per_second"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="kaggle", help="kaggle | default | a path")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=160, help="steps per run (the rate uses the second half)")
    parser.add_argument("--batch", type=int, default=8, help="batch per process (the class profile's: 8)")
    parser.add_argument("--nproc", type=int, nargs="+", default=[2], help="torchrun process counts to measure")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads of one process")
    parser.add_argument("--repeats", type=int, default=2, help="runs of every variant")
    args = parser.parse_args()

    source = str(KAGGLE) if args.data == "kaggle" else args.data
    work = ROOT / "runs" / f"bench-throughput-{args.device}"
    shutil.rmtree(work, ignore_errors=True)
    # the prior needs a VQ-VAE's codes; any checkpoint will do for speed
    subprocess.run([sys.executable, "-m", "vqvae_lib", "train-vqvae", "--data", source, "--profile", "class",
                    "--image-size", "128", "--steps", "20", "--out", str(work / "prior-codes"), "--device",
                    args.device, "--no-progress"], check=True, cwd=ROOT, capture_output=True)
    cpu = args.device == "cpu"
    single = [("fp32", []), ("channels_last", ["--channels-last"]), ("compile", ["--compile"]),
              ("bf16", ["--precision", "bf16"]), ("bf16 + channels_last", ["--precision", "bf16", "--channels-last"])]
    if not cpu:
        single[0] = ("fp32", ["--precision", "fp32"])  # on CUDA the default ("auto") is bf16
    records = []
    for kind in ("train-vqvae", "train-prior"):
        variants = [(name, opts, 1, args.batch, False) for name, opts in single]
        variants += [(f"fp32, batch {n * args.batch}", single[0][1], 1, n * args.batch, False)
                     for n in args.nproc if n > 1]
        # torchrun in the default precision: fp32 on a CPU, bf16 on a GPU
        variants += [(f"torchrun x{n}" + ("" if cpu else ", bf16"), [], n, args.batch, True) for n in args.nproc]
        for name, options, processes, batch, torchrun in variants:
            threads = max(1, args.threads // processes) if cpu else args.threads
            runs = [train(kind, work / f"{kind}-{len(records)}-{i}", source, args.steps, batch, args.device,
                          options, processes, threads, torchrun) for i in range(args.repeats)]
            record = {**runs[-1], "rates": [r["rate"] for r in runs],
                      "rate": round(sum(r["rate"] for r in runs) / len(runs), 1)}
            records.append({"model": "vqvae" if kind == "train-vqvae" else "prior", "variant": name, **record})
            print(f"{kind:12s} {name:22s} {record['rate']:8.1f} /s  {record['rates']}", flush=True)
    out = ROOT / "benchmarks" / "results" / f"throughput-{args.device}.json"
    out.write_text(json.dumps({"schema": SCHEMA, "data": args.data, "device": args.device, "machine": machine(),
                               "commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M"),
                               "steps": args.steps, "repeats": args.repeats, "records": records}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
