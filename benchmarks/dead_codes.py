"""The dead-code restart rule: the class VQ-VAE's held-out SSIM with this checkout's rule against an earlier commit's.

    python benchmarks/dead_codes.py --before ba5ef2b --runs default:0 default:1 kaggle:0

Trains the class profile's VQ-VAE for each data set and seed (``--runs DATA:SEED ...``) through the CLI
(``train-vqvae``, then ``evaluate`` on the test split), once with the code of ``--before`` (checked out with ``git
worktree`` into build/dead-codes/) and once with this checkout, and writes benchmarks/results/dead-codes.json: test
SSIM, brain SSIM, codes used and dead-code restarts for every run. The budget is a step count (``--steps``, 1500:
about what the class profile's 3 minutes give on a 2-core CPU), not minutes, so that a busy machine changes how long
it takes, not what it measures. Finished runs in runs/dead-codes/ are loaded, not trained again. ``kaggle`` is
../shared/data/oasis-kaggle/train, ``default`` the built-in MNI152 set.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from vqvae_quality import KAGGLE, SCHEMA, git_commit, machine  # noqa: E402


def worktree(commit: str) -> Path:
    """A checkout of ``commit`` in build/dead-codes/<commit> (made once)."""
    path = ROOT / "build" / "dead-codes" / commit
    if not (path / "vqvae_lib").is_dir():
        subprocess.run(["git", "worktree", "add", "--force", "--detach", str(path), commit], cwd=ROOT, check=True,
                       capture_output=True)
    return path


def run(code: Path, data: str, seed: int, steps: int, out: Path) -> dict:
    """Train (or load) and evaluate one VQ-VAE with the library at ``code``: the evaluation and the restarts."""
    source = str(KAGGLE) if data == "kaggle" else data
    # python -m finds vqvae_lib in its working folder first: run each version from its own checkout; both read and
    # write data in this checkout's (or $VQVAE_HOME's) folders
    env = {**os.environ, "PYTHONPATH": str(code), "VQVAE_HOME": os.environ.get("VQVAE_HOME", str(ROOT))}
    cli = [sys.executable, "-m", "vqvae_lib"]
    subprocess.run([*cli, "train-vqvae", "--profile", "class", "--data", source, "--steps", str(steps), "--seed",
                    str(seed), "--out", str(out), "--no-progress"], env=env, cwd=code, check=True, capture_output=True)
    done = subprocess.run([*cli, "evaluate", "--checkpoint", str(out / "vqvae.pt"), "--data", source, "--json"],
                          env=env, cwd=code, check=True, capture_output=True, text=True)
    state = torch.load(out / "vqvae.pt", map_location="cpu", weights_only=True)
    scores = json.loads(done.stdout)
    return {"ssim_mean": scores["ssim_mean"], "ssim_brain_mean": scores["ssim_brain_mean"],
            "active_codes": scores["active_codes"], "n_images": scores["n_images"], "split_kind": scores["split_kind"],
            "restarts": int(state["model"]["quantizer.restarts"]), "steps": int(state["step"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the commit whose restart rule to compare with")
    parser.add_argument("--runs", nargs="+", default=["default:0", "kaggle:0"],
                        help="DATA:SEED pairs, DATA one of default, kaggle (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args(argv)

    codes = {"before": worktree(args.before), "current": ROOT}
    started, runs = time.perf_counter(), []
    for data, seed in (spec.split(":") for spec in args.runs):
        if data not in ("default", "kaggle"):
            raise SystemExit(f"--runs: data must be default or kaggle, got {data!r}")
        for version, code in codes.items():
            tag = args.before if version == "before" else "current"
            out = ROOT / "runs" / "dead-codes" / f"{tag}-{data}-s{seed}"
            runs.append({"data": data, "seed": int(seed), "code": version, **run(code, data, int(seed), args.steps,
                                                                                  out)})
            print(json.dumps(runs[-1]))
    record = {"schema": SCHEMA, "name": "dead-codes", "before": args.before, "after": git_commit(),
              "steps": args.steps, "profile": "class", "runs": runs,
              "wall_seconds": round(time.perf_counter() - started),
              "command": f"python benchmarks/dead_codes.py --before {args.before} --runs {' '.join(args.runs)}",
              "machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
    path = ROOT / "benchmarks" / "results" / "dead-codes.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
