"""``python -m vqvae_lib ...``: the stable command-line contract for scripts, benchmarks and people
who outgrow the notebooks.

    python -m vqvae_lib train-vqvae --data SOURCE --image-size 128 [--profile class]
                                    [--minutes 10 | --steps N] --out runs/NAME
    python -m vqvae_lib evaluate --checkpoint runs/NAME/vqvae.pt --data SOURCE [--split test] --json
    python -m vqvae_lib train-prior --vqvae runs/NAME/vqvae.pt --data SOURCE [--profile class]
                                    [--minutes M | --steps N] --out runs/NAME
    python -m vqvae_lib sample --vqvae runs/NAME/vqvae.pt --prior runs/NAME/prior.pt -n 16 [--label L]
                               [--temperature T] [--top-k K] [--seed S] [--naive] --out samples.png

SOURCE is anything the data layer reads: an OASIS slice root, an ImageFolder tree, a plain folder
of images, or ``default``.

The training commands run data-parallel when started by torchrun (``--batch-size`` is then per process):

    torchrun --nproc_per_node=4 -m vqvae_lib train-vqvae --data SOURCE --profile full --out runs/NAME
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torchvision.utils import save_image

from . import distributed
from .config import PRECISIONS, PROFILES, TrainConfig, VQVAEConfig, get_profile
from .pipeline import evaluate_vqvae, load_prior, load_vqvae, throughput, train_prior, train_vqvae, with_minutes
from .sampling import decode, sample
from .utils import get_device

REFERENCE_TRAIN = TrainConfig(batch_size=32, lr=3e-4, warmup_steps=0, schedule="constant", grad_clip=0.0)


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def _training_options(parser: argparse.ArgumentParser, out_help: str) -> None:
    """The options every training command shares: budget, optimizer overrides, output, device."""
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=_positive(float), help="training time budget (training steps only)")
    budget.add_argument("--steps", type=_positive(int), help="number of optimizer steps")
    parser.add_argument("--batch-size", type=_positive(int))
    parser.add_argument("--lr", type=_positive(float))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--eval-every", type=int, help="validate every N steps (0: only at the end)")
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--device", help="cuda | mps | cpu (default: the best available)")
    parser.add_argument("--threads", type=_positive(int), help="CPU threads for torch (per process)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="auto (default): bf16 autocast on CUDA, fp32 elsewhere; the quantizer is always fp32")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory layout for the convolutions")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (slow to start)")
    parser.add_argument("--no-progress", action="store_true")


def _train_overrides(args) -> dict:
    """The TrainConfig fields a training command's options change."""
    options = {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "eval_every": args.eval_every,
               "precision": args.precision,
               "channels_last": args.channels_last or None, "compile": args.compile or None}
    return {name: value for name, value in options.items() if value is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vqvae_lib", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train-vqvae", help="train a VQ-VAE (resumes if --out already holds a checkpoint)")
    train.add_argument("--data", default="default", help="slice source (default: %(default)s)")
    train.add_argument("--image-size", type=_positive(int), help="slice size (default: the profile's)")
    train.add_argument("--profile", choices=PROFILES, help="sizes and step counts (default: $VQVAE_PROFILE or class)")
    train.add_argument("--model", choices=("profile", "reference"), default="profile",
                       help="'reference': the DeepMind Sonnet example's configuration (Adam 3e-4, batch 32)")
    _training_options(train, "run folder: writes OUT/vqvae.pt and OUT/history.json")

    ev = sub.add_parser("evaluate", help="score a trained VQ-VAE on a split")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--data", default="default")
    ev.add_argument("--split", help="default: test where the source has one, else its seeded hold-out")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--device")
    ev.add_argument("--threads", type=_positive(int))

    prior = sub.add_parser("train-prior", help="train a PixelCNN prior on a VQ-VAE's code maps (resumes)")
    prior.add_argument("--vqvae", required=True, help="the VQ-VAE checkpoint whose codes the prior models")
    prior.add_argument("--data", default="default", help="slice source (default: %(default)s)")
    prior.add_argument("--profile", choices=PROFILES, help="prior size and steps (default: $VQVAE_PROFILE or class)")
    _training_options(prior, "run folder: writes OUT/prior.pt and OUT/prior_history.json")

    smp = sub.add_parser("sample", help="sample code maps from a prior, decode them, save a PNG grid")
    smp.add_argument("--vqvae", required=True)
    smp.add_argument("--prior", required=True)
    smp.add_argument("-n", type=_positive(int), default=16, help="number of samples (default: %(default)s)")
    smp.add_argument("--label", help="a conditional prior's label (a name or an index); default: each in turn")
    smp.add_argument("--temperature", type=_positive(float), default=1.0)
    smp.add_argument("--top-k", type=_positive(int))
    smp.add_argument("--seed", type=int, default=0)
    smp.add_argument("--naive", action="store_true", help="the reference sampler (a full forward pass per code)")
    smp.add_argument("--out", required=True, help="PNG file for the grid of decoded samples")
    smp.add_argument("--device")
    smp.add_argument("--threads", type=_positive(int))
    return parser


def _train_config(args) -> tuple[VQVAEConfig, TrainConfig, int]:
    profile = get_profile(args.profile)
    if args.model == "reference":
        model_cfg = VQVAEConfig.reference()
        train_cfg = replace(REFERENCE_TRAIN, eval_every=profile.vqvae_train.eval_every)
    else:
        model_cfg, train_cfg = profile.vqvae, profile.vqvae_train
    train_cfg = with_minutes(train_cfg, args.minutes, args.steps)
    return model_cfg, replace(train_cfg, **_train_overrides(args)), args.image_size or profile.image_size


def _print_summary(summary: dict) -> None:
    """One JSON line, from rank 0 alone under torchrun."""
    if distributed.is_main():
        print(json.dumps(summary))


def cmd_train(args) -> int:
    model_cfg, train_cfg, size = _train_config(args)
    device = distributed.setup(get_device(args.device))
    started = time.perf_counter()
    result = train_vqvae(args.data, args.out, model_cfg, train_cfg, size, device=device,
                         progress=not args.no_progress)
    history = result.history
    summary = {
        "checkpoint": str(result.checkpoint), "steps": result.step, "stopped": result.stopped,
        "train_seconds": round(result.train_seconds, 1), "wall_seconds": round(time.perf_counter() - started, 1),
        "images_per_second": round(throughput(result, train_cfg.batch_size), 1),
        "val_ssim": history.get("val_ssim_mean", [None])[-1],
        "val_active_codes": history.get("val_active_codes", [None])[-1],
        "device": str(device), "processes": distributed.world_size(), "batch_size": train_cfg.batch_size,
        "threads": torch.get_num_threads(), "precision": train_cfg.precision,
        "channels_last": train_cfg.channels_last, "compile": train_cfg.compile,
    }
    _print_summary(summary)
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


def cmd_train_prior(args) -> int:
    profile = get_profile(args.profile)
    train_cfg = replace(with_minutes(profile.prior_train, args.minutes, args.steps), **_train_overrides(args))
    device = distributed.setup(get_device(args.device))
    started = time.perf_counter()
    result = train_prior(args.vqvae, args.data, args.out, profile.prior, train_cfg, device=device,
                         progress=not args.no_progress)
    summary = {
        "checkpoint": str(result.checkpoint), "steps": result.step, "stopped": result.stopped,
        "train_seconds": round(result.train_seconds, 1), "wall_seconds": round(time.perf_counter() - started, 1),
        "maps_per_second": round(throughput(result, train_cfg.batch_size), 1),
        "val_bits_per_code": result.history.get("val_bits_per_code", [None])[-1],
        "labels": result.model.label_names, "device": str(device), "processes": distributed.world_size(),
        "precision": train_cfg.precision,
    }
    _print_summary(summary)
    return 0


def _label_index(label: str | None, names: list[str]) -> int | None:
    """A label given by name or index -> its index; None stays None."""
    if label is None:
        return None
    if not names:
        raise ValueError(f"--label {label!r}: this prior is unconditional")
    if label in names:
        return names.index(label)
    if label.isdigit() and int(label) < len(names):
        return int(label)
    raise ValueError(f"--label {label!r} is neither a label of this prior nor an index below {len(names)}: "
                     f"{', '.join(names)}")


def cmd_sample(args) -> int:
    device = get_device(args.device)
    vqvae = load_vqvae(args.vqvae, device)
    prior = load_prior(args.prior, device, vqvae_path=args.vqvae)
    label = _label_index(args.label, prior.label_names)
    if label is None and prior.config.n_labels:  # a conditional prior without --label: every label in turn
        labels = torch.arange(args.n) % prior.config.n_labels
    else:
        labels = None if label is None else torch.full((args.n,), label)
    started = time.perf_counter()
    codes = sample(prior, args.n, labels=labels, temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                   naive=args.naive)
    sampled = time.perf_counter()
    images = decode(vqvae, codes)
    decoded = time.perf_counter()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_image(images, args.out, nrow=max(1, round(args.n ** 0.5)), padding=2)
    print(json.dumps({
        "out": str(args.out), "n": args.n, "latent_shape": list(codes.shape[1:]),
        "sampler": "naive" if args.naive else "fast", "sample_seconds": round(sampled - started, 3),
        "decode_seconds": round(decoded - sampled, 3),
        "labels": None if labels is None else [prior.label_names[i] for i in labels.tolist()],
        "temperature": args.temperature, "top_k": args.top_k, "seed": args.seed, "device": str(device),
        "threads": torch.get_num_threads(),
    }))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        commands = {"train-vqvae": cmd_train, "evaluate": cmd_evaluate, "train-prior": cmd_train_prior,
                    "sample": cmd_sample}
        return commands[args.command](args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        distributed.teardown()


if __name__ == "__main__":
    sys.exit(main())
