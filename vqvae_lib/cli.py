"""``python -m vqvae_lib ...``: the stable command-line contract for scripts, benchmarks and people
who outgrow the notebooks.

    python -m vqvae_lib train-vqvae --data SOURCE --image-size 128 [--profile class]
                                    [--minutes 10 | --steps N] --out runs/NAME
    python -m vqvae_lib evaluate --checkpoint runs/NAME/vqvae.pt --data SOURCE [--split test] --json

SOURCE is anything the data layer reads: an OASIS slice root, an ImageFolder tree, a plain folder
of images, or ``default``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import torch

from .config import PROFILES, TrainConfig, VQVAEConfig, get_profile
from .pipeline import evaluate_vqvae, load_vqvae, train_vqvae, with_minutes
from .utils import get_device

REFERENCE_TRAIN = TrainConfig(batch_size=32, lr=3e-4, warmup_steps=0, schedule="constant", grad_clip=0.0)


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vqvae_lib", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train-vqvae", help="train a VQ-VAE (resumes if --out already holds a checkpoint)")
    train.add_argument("--data", default="default", help="slice source (default: %(default)s)")
    train.add_argument("--image-size", type=_positive(int), help="slice size (default: the profile's)")
    train.add_argument("--profile", choices=PROFILES, help="sizes and step counts (default: $VQVAE_PROFILE or class)")
    train.add_argument("--model", choices=("profile", "reference"), default="profile",
                       help="'reference': the DeepMind Sonnet example's configuration (Adam 3e-4, batch 32)")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=_positive(float), help="training time budget (training steps only)")
    budget.add_argument("--steps", type=_positive(int), help="number of optimizer steps")
    train.add_argument("--batch-size", type=_positive(int))
    train.add_argument("--lr", type=_positive(float))
    train.add_argument("--seed", type=int)
    train.add_argument("--out", required=True, help="run folder: writes OUT/vqvae.pt and OUT/history.json")
    train.add_argument("--device", help="cuda | mps | cpu (default: the best available)")
    train.add_argument("--threads", type=_positive(int), help="CPU threads for torch")
    train.add_argument("--no-progress", action="store_true")

    ev = sub.add_parser("evaluate", help="score a trained VQ-VAE on a split")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--data", default="default")
    ev.add_argument("--split", help="default: test where the source has one, else its seeded hold-out")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--device")
    ev.add_argument("--threads", type=_positive(int))
    return parser


def _train_config(args) -> tuple[VQVAEConfig, TrainConfig, int]:
    profile = get_profile(args.profile)
    if args.model == "reference":
        model_cfg = VQVAEConfig.reference()
        train_cfg = replace(REFERENCE_TRAIN, eval_every=profile.vqvae_train.eval_every)
    else:
        model_cfg, train_cfg = profile.vqvae, profile.vqvae_train
    train_cfg = with_minutes(train_cfg, args.minutes, args.steps)
    overrides = (("batch_size", args.batch_size), ("lr", args.lr), ("seed", args.seed))
    changes = {k: v for k, v in overrides if v is not None}
    return model_cfg, replace(train_cfg, **changes), args.image_size or profile.image_size


def cmd_train(args) -> int:
    model_cfg, train_cfg, size = _train_config(args)
    device = get_device(args.device)
    started = time.perf_counter()
    result = train_vqvae(args.data, args.out, model_cfg, train_cfg, size, device=device,
                         progress=not args.no_progress)
    history = result.history
    summary = {
        "checkpoint": str(result.checkpoint), "steps": result.step, "stopped": result.stopped,
        "train_seconds": round(result.train_seconds, 1), "wall_seconds": round(time.perf_counter() - started, 1),
        "images_per_second": round(result.step * train_cfg.batch_size / max(result.train_seconds, 1e-9), 1),
        "val_ssim": history.get("val_ssim_mean", [None])[-1],
        "val_active_codes": history.get("val_active_codes", [None])[-1],
        "device": str(device),
    }
    print(json.dumps(summary))
    return 0


def cmd_evaluate(args) -> int:
    model = load_vqvae(args.checkpoint, get_device(args.device))
    summary = evaluate_vqvae(model, args.data, args.split).summary()
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>12}: {value:.4f}" if isinstance(value, float) else f"{key:>12}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        return {"train-vqvae": cmd_train, "evaluate": cmd_evaluate}[args.command](args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
