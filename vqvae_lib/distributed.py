"""Data-parallel training on PyTorch's own engine: torch.distributed, started by ``torchrun``.

    torchrun --nproc_per_node=2 -m vqvae_lib train-vqvae --data default --out runs/ddp

``torchrun`` starts one process per GPU (or per CPU share) and sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; ``setup`` reads them and joins the process group
(NCCL on CUDA, gloo on the CPU). Without those variables every helper here is a no-op, so the same code
runs as one plain process. Multi-node runs use torchrun's usual rendezvous flags (``--nnodes``,
``--rdzv-endpoint``...) and need the run folder on a file system every node sees (every rank reads the
checkpoint when it resumes; rank 0 alone writes it).
"""
from __future__ import annotations

import inspect
import os
from contextlib import contextmanager

import torch
import torch.distributed as dist


def launched() -> bool:
    """True in a process started by torchrun (or anything else that sets WORLD_SIZE and RANK)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def is_distributed() -> bool:
    """True once the process group is up with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0 (or a plain single process): the one that logs, shows progress and writes files."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group when started by torchrun and return this rank's device.

    CUDA: one GPU per process, ``cuda:LOCAL_RANK``, backend NCCL. CPU: backend gloo. A plain process
    (no torchrun) gets ``device`` back unchanged.
    """
    if not launched() or dist.is_initialized():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local} has no GPU: this node has {torch.cuda.device_count()}; "
                             f"start torchrun with --nproc_per_node at most {torch.cuda.device_count()}")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    elif device.type == "cpu":
        dist.init_process_group("gloo")
    else:
        raise ValueError(f"distributed training runs on cuda (NCCL) or cpu (gloo), not on {device.type!r}")
    return device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextmanager
def main_first():
    """Rank 0 runs the block first (building a cache, say), the other ranks after it (reading the cache)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place; unchanged in a single process."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean_(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over all ranks, in place; unchanged in a single process."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(dist.get_world_size())
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` on every rank with rank ``src``'s values; unchanged in a single process."""
    if is_distributed():
        dist.broadcast(tensor, src=src)
    return tensor


class MainRankFailed(RuntimeError):
    """Raised on the other ranks when rank 0 failed in ``on_main``; the message is rank 0's."""


def on_main(fn):
    """Run ``fn()`` on rank 0 alone (validation, a checkpoint write), then tell every rank whether it failed:
    if it raised, rank 0 re-raises its error and every other rank raises ``MainRankFailed`` with the same
    message at once, instead of waiting in the next collective until the backend's time-out. In a single
    process this is just ``fn()``."""
    error = None
    if is_main():
        try:
            fn()
        except Exception as err:  # noqa: BLE001  (shared with the other ranks, then re-raised)
            error = err
    if is_distributed():
        status = [None if error is None else f"{type(error).__name__}: {error}"]
        dist.broadcast_object_list(status, src=0)
        if status[0] is not None and error is None:
            raise MainRankFailed(f"rank 0 failed, so rank {rank()} stops too: {status[0]}")
    if error is not None:
        raise error


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when distributed, else ``model`` itself.

    Buffers are synced once, not re-broadcast before every forward: the quantizer keeps
    its EMA statistics identical on every rank by all-reducing them itself.
    """
    if not is_distributed():
        return model
    device = next(model.parameters()).device
    device_ids = [device.index] if device.type == "cuda" else None
    ddp = torch.nn.parallel.DistributedDataParallel
    # newer torch renames the option (and deprecates the old name); both still sync once at construction
    renamed = "forward_sync_buffers" in inspect.signature(ddp).parameters
    no_sync = "forward_sync_buffers" if renamed else "broadcast_buffers"
    return ddp(model, device_ids=device_ids, **{no_sync: False})
