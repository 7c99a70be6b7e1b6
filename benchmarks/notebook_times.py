"""Each notebook from scratch: wall time and peak memory, the promise the class profile makes.

    python benchmarks/notebook_times.py                  # class profile, every notebook in order
    python benchmarks/notebook_times.py --profile smoke  # a quick check of the script itself
    python benchmarks/notebook_times.py --profile pretrained   # the notebooks on the course models (PRETRAINED)

Runs the notebooks in order, as a student's first ``make tutorial`` does, with ``jupyter nbconvert --execute``
in a fresh ``VQVAE_HOME`` (build/notebook-times/home: no data cache, no trained runs, no code maps, so the
built-in data is built and every model trained inside the notebooks that need them; the repository's own
runs/, data/ and figures/ are not touched). Measured per notebook: wall seconds of the whole nbconvert call
(kernel start included) and the peak resident memory of the process tree (nbconvert and its kernel, summed,
polled every 0.2 s). Writes benchmarks/results/notebook-times-<profile>.json; the executed copies go to
build/notebook-times/. Run it alone: a second busy process on a 2-core machine slows everything.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from vqvae_quality import SCHEMA, git_commit, machine  # noqa: E402

LIMIT_SECONDS, LIMIT_MB = 300, 4096  # the class profile's promise: 5 minutes and 4 GB per notebook


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (0 for those that are gone)."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_notebook(notebook: Path, out_dir: Path, env: dict) -> dict:
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
           "--ExecutePreprocessor.timeout=1800", "--ExecutePreprocessor.store_widget_state=False",
           "--output-dir", str(out_dir), str(notebook)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, tree_rss(watched))
        except psutil.Error:
            pass
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    output = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"{notebook.name} failed (exit {proc.returncode}):\n{output[-3000:]}")
    return {"notebook": notebook.name, "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="class", choices=("smoke", "class", "pretrained"))
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args(argv)

    work = ROOT / "build" / "notebook-times"
    home = work / "home"
    shutil.rmtree(work, ignore_errors=True)
    home.mkdir(parents=True)
    env = {**os.environ, "VQVAE_PROFILE": args.profile, "VQVAE_HOME": str(home)}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    rows = []
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        row = run_notebook(notebook, work, env)
        row["within_limits"] = row["seconds"] <= LIMIT_SECONDS and row["peak_rss_mb"] <= LIMIT_MB
        rows.append(row)
        print(json.dumps(row), flush=True)
    record = {"schema": SCHEMA, "name": f"notebook-times-{args.profile}", "profile": args.profile, "from_scratch": True,
              "limits": {"seconds": LIMIT_SECONDS, "peak_rss_mb": LIMIT_MB}, "notebooks": rows,
              "total_seconds": round(sum(r["seconds"] for r in rows), 1),
              "machine": machine(), "commit": git_commit(),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out = ROOT / "benchmarks" / "results" / f"{record['name']}.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
