"""One rank of a tiny data-parallel VQ-VAE run, for tests/test_distributed.py; started by torchrun:

    python -m torch.distributed.run --nproc_per_node=2 tests/ddp_worker.py --out DIR --steps 30

Every rank writes DIR/<tag>-rank<r>.pt: its weights and buffers, the losses it logged, the step it
started from and the indices of its first batch. ``--interrupt-at N`` stops every rank at the N-th loss
evaluation (as a crash would) after the checkpoint of step ``--checkpoint-every`` was written.
``--poison-main-at N`` makes rank 0 alone put a NaN into its codebook at the validation of step N, just
before that step's checkpoint (which must then fail on rank 0 and stop every rank at once).
``--kill-during-save N`` kills the process (SIGKILL, as ``kill -9`` would) in the middle of writing its
N-th checkpoint, half of the bytes written. Without torchrun the worker is one plain process.
"""
import argparse
import io
import os
import signal
from pathlib import Path

import torch

from vqvae_lib import distributed
from vqvae_lib.config import TrainConfig, VQVAEConfig
from vqvae_lib.train import BatchSampler, fit
from vqvae_lib.vqvae import VQVAE, vqvae_loss


class Interrupt(Exception):
    pass


def blobs(n: int = 64, size: int = 16) -> torch.Tensor:
    """n seeded images (n, 1, size, size) uint8: a bright Gaussian blob at a random place on black."""
    g = torch.Generator().manual_seed(0)
    centre = torch.rand(n, 2, 1, 1, generator=g) * size
    width = 2 + 3 * torch.rand(n, 1, 1, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    d2 = (yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2  # (n, size, size)
    return (255 * torch.exp(-d2 / (2 * width**2))).round().to(torch.uint8).unsqueeze(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--tag", default="run")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--checkpoint")
    parser.add_argument("--interrupt-at", type=int)
    parser.add_argument("--poison-main-at", type=int)
    parser.add_argument("--kill-during-save", type=int)
    args = parser.parse_args()
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    rank, world = distributed.rank(), distributed.world_size()

    torch.manual_seed(1 + rank)  # different initial weights per rank: DDP must make them equal
    model = VQVAE(VQVAEConfig(hidden_channels=16, res_channels=8, n_res_blocks=1, downsample=4, codebook_size=32,
                              embedding_dim=8, dead_share=0.5, recon_loss="mse"))
    cfg = TrainConfig(batch_size=8, steps=args.steps, lr=1e-2, warmup_steps=5,
                      eval_every=args.checkpoint_every if args.poison_main_at else 0,
                      checkpoint_every=args.checkpoint_every, seed=0)
    calls = 0

    def loss_fn(net, batch, labels):
        nonlocal calls
        calls += 1
        if calls == args.interrupt_at:
            raise Interrupt
        return vqvae_loss(net, batch, labels)

    def validate(net):  # runs on rank 0 alone
        if calls >= args.poison_main_at:
            net.quantizer.embeddings[0, 0] = float("nan")
        return {}

    if args.kill_during_save:
        kill_during_save(args.kill_during_save)
    data = blobs()
    first_batch = BatchSampler(len(data), cfg.batch_size, cfg.seed, rank, world).next_indices()
    try:
        result = fit(model, data, loss_fn, cfg, checkpoint=args.checkpoint, progress=False,
                     validate=validate if args.poison_main_at else None)
    except Interrupt:
        distributed.teardown()
        return
    torch.save({"state": model.state_dict(), "loss": result.history["loss"], "start_step": result.start_step,
                "step": result.step, "first_batch": first_batch, "world": world},
               Path(args.out) / f"{args.tag}-rank{rank}.pt")
    distributed.teardown()


def kill_during_save(n: int) -> None:
    """Make the n-th ``torch.save`` write half of its bytes, then SIGKILL this process."""
    real_save, saves = torch.save, 0

    def dying_save(obj, handle, *args, **kwargs):
        nonlocal saves
        saves += 1
        if saves < n:
            return real_save(obj, handle, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        handle.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    torch.save = dying_save


if __name__ == "__main__":
    main()
