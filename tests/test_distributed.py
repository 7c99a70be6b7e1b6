"""Data-parallel training with torchrun: 2 CPU processes, gloo backend, tiny model and data.

The loss goes down, the codebook (and every weight and buffer) is identical on both ranks, the ranks
draw disjoint batches, an interrupted run resumes bit for bit under torchrun, and the CLI runs under
torchrun with rank 0 alone printing and writing.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_imagefolder

from vqvae_lib import distributed
from vqvae_lib.train import BatchSampler, load_checkpoint

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def torchrun(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 ARGS`` (torch's own launcher), one thread per process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VQVAE_DEVICE": "cpu", **(env or {})}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def worker(out: Path, tag: str, *extra: str) -> list[dict]:
    torchrun(str(WORKER), "--out", str(out), "--tag", tag, *extra)
    return [torch.load(out / f"{tag}-rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    return worker(out, "plain", "--steps", "30")


def test_two_processes_train_and_keep_one_codebook(two_ranks):
    r0, r1 = two_ranks
    assert r0["world"] == r1["world"] == 2 and r0["step"] == r1["step"] == 30
    losses = torch.tensor(r0["loss"])
    assert losses[-5:].mean() < 0.5 * losses[:5].mean(), f"the loss did not go down: {losses.tolist()}"
    assert r0["loss"] == r1["loss"], "the logged loss is the mean over ranks, the same on both"
    q0 = {k: v for k, v in r0["state"].items() if k.startswith("quantizer.")}
    assert {"quantizer.embeddings", "quantizer.ema_cluster_size", "quantizer.ema_embed_sum"} <= set(q0)
    for name, value in r0["state"].items():
        assert torch.equal(value, r1["state"][name]), f"{name} differs between the ranks"
    assert int(r0["state"]["quantizer.restarts"]) > 0, "no dead-code restart happened: the broadcast went untested"


def test_ranks_draw_disjoint_batches(two_ranks):
    first0, first1 = (set(r["first_batch"].tolist()) for r in two_ranks)
    assert len(first0) == len(first1) == 8 and not first0 & first1


def test_sampler_shares_an_epoch_between_ranks():
    shares = [BatchSampler(21, 5, seed=3, rank=r, world_size=2) for r in range(2)]
    epochs = [torch.cat([s.next_indices() for _ in range(2)]) for s in shares]  # 2 batches of 5 = 10 = 21 // 2
    assert not set(epochs[0].tolist()) & set(epochs[1].tolist())
    single = BatchSampler(21, 5, seed=3)
    assert single.n == 21 and distributed.world_size() == 1 and not distributed.is_distributed()
    with pytest.raises(ValueError, match="cannot be shared by 4 processes"):
        BatchSampler(3, 2, seed=0, rank=0, world_size=4)


def test_resume_under_torchrun_is_bit_exact(tmp_path, two_ranks):
    ckpt = tmp_path / "cut.pt"
    torchrun(str(WORKER), "--out", str(tmp_path), "--tag", "cut", "--steps", "30", "--checkpoint", str(ckpt),
             "--interrupt-at", "15")  # both ranks stop at step 15; the checkpoint of step 10 is on disk
    assert load_checkpoint(ckpt)["step"] == 10 and not (tmp_path / "cut-rank0.pt").exists()
    resumed = worker(tmp_path, "resumed", "--steps", "30", "--checkpoint", str(ckpt))
    assert resumed[0]["start_step"] == 10 and resumed[0]["step"] == 30
    for name, value in two_ranks[0]["state"].items():
        assert torch.equal(value, resumed[0]["state"][name]), f"{name}: resumed run differs from the uninterrupted"
        assert torch.equal(value, resumed[1]["state"][name])


def test_a_failure_on_rank_0_alone_stops_every_rank_at_once(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
               "--out", str(tmp_path), "--steps", "30", "--checkpoint", str(tmp_path / "run.pt"),
               "--poison-main-at", "10"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VQVAE_DEVICE": "cpu"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    elapsed = time.perf_counter() - start
    assert done.returncode != 0
    assert "non-finite weights at step 10" in done.stderr
    assert "rank 0 failed, so rank 1 stops too: TrainingDiverged: non-finite weights" in done.stderr
    assert elapsed < 60, f"the ranks took {elapsed:.0f} s to stop (a collective waited for its time-out)"
    assert not (tmp_path / "run.pt").exists()


def test_kill_9_during_a_checkpoint_write_then_the_same_command_resumes_exactly(tmp_path):
    """A real process killed (SIGKILL) halfway through writing its second checkpoint: the first stays intact,
    and the same command resumes from it to the weights of an uninterrupted run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VQVAE_DEVICE": "cpu"}
    run = [sys.executable, str(WORKER), "--out", str(tmp_path), "--steps", "30", "--checkpoint-every", "10"]
    ckpt = tmp_path / "cut.pt"
    killed = subprocess.run([*run, "--tag", "cut", "--checkpoint", str(ckpt), "--kill-during-save", "2"],
                            env=env, cwd=ROOT, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(ckpt)["step"] == 10                   # the half-written step-20 file never replaced it
    subprocess.run([*run, "--tag", "cut", "--checkpoint", str(ckpt)], env=env, cwd=ROOT, check=True, timeout=300)
    subprocess.run([*run, "--tag", "whole"], env=env, cwd=ROOT, check=True, timeout=300)
    resumed, whole = (torch.load(tmp_path / f"{tag}-rank0.pt", weights_only=True) for tag in ("cut", "whole"))
    assert resumed["start_step"] == 10 and resumed["step"] == whole["step"] == 30
    assert resumed["loss"] == whole["loss"]
    for name, value in whole["state"].items():
        assert torch.equal(value, resumed["state"][name]), f"{name}: resumed run differs from the uninterrupted"


def test_cli_trains_vqvae_and_prior_under_torchrun(tmp_path):
    home = tmp_path / "home"
    source = tiny_imagefolder(tmp_path / "slices", (40, 32), (8, 6), textured=True)
    out = tmp_path / "run"
    common = ["--data", str(source), "--profile", "smoke", "--batch-size", "2", "--out", str(out), "--no-progress"]
    env = {"VQVAE_HOME": str(home)}
    done = torchrun("-m", "vqvae_lib", "train-vqvae", "--image-size", "32", "--steps", "4", *common, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"rank 0 alone prints the summary: {done.stdout}"
    summary = json.loads(lines[0])
    assert summary["processes"] == 2 and summary["steps"] == 4 and summary["device"] == "cpu"
    ckpt = load_checkpoint(out / "vqvae.pt")
    # 16 training slices: 8 per rank, 4 batches of 2 each -> one whole epoch of this rank's share
    assert ckpt["step"] == 4 and ckpt["sampler"] == {"epoch": 0, "position": 8}
    assert not list(out.glob(".*.tmp")), "no temporary checkpoint files are left behind"

    done = torchrun("-m", "vqvae_lib", "train-prior", "--vqvae", str(out / "vqvae.pt"), "--steps", "3", *common,
                    env=env)
    prior = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert prior["processes"] == 2 and prior["steps"] == 3 and (out / "prior.pt").is_file()
    shutil.rmtree(home, ignore_errors=True)
