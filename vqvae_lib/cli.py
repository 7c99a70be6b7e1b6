"""``python -m vqvae_lib ...``: the stable command-line contract for scripts, benchmarks and people
who outgrow the notebooks.

    python -m vqvae_lib train-vqvae --data SOURCE --image-size 128 [--profile class]
                                    [--minutes 10 | --steps N] [--group-by REGEX] --out runs/NAME
    python -m vqvae_lib evaluate --checkpoint runs/NAME/vqvae.pt --data SOURCE [--split test] --json
    python -m vqvae_lib train-prior --vqvae runs/NAME/vqvae.pt --data SOURCE [--profile class]
                                    [--minutes M | --steps N] --out runs/NAME
    python -m vqvae_lib sample --vqvae runs/NAME/vqvae.pt --prior runs/NAME/prior.pt -n 16 [--label L]
                               [--temperature T] [--top-k K] [--seed S] [--naive] --out samples.png
                               [--save-dir DIR]
    python -m vqvae_lib sample-quality --samples DIR --data SOURCE [--n-real N] [--no-two-sample] [--seed S]
                                       --json

SOURCE is anything the data layer reads: an OASIS slice root, an ImageFolder tree, a plain folder
of images, or ``default``.

The training commands run data-parallel when started by torchrun (``--batch-size`` is then per process):

    torchrun --nproc_per_node=4 -m vqvae_lib train-vqvae --data SOURCE --profile full --out runs/NAME

Each command imports what it uses, inside its function: ``sample`` loads the checkpoints, the samplers and
a PNG writer (PIL), never the training pipeline, the data layer or torchmetrics (with scipy), which would
cost it more than a second of start-up (``benchmarks/sampler_speed.py`` times the whole command).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from . import distributed
from .config import PRECISIONS, PROFILES, RECON_LOSSES, SUPPORTS, SamplingConfig, TrainConfig, VQVAEConfig, get_profile
from .utils import get_device

# how the two baselines train (see VQVAEConfig.reference and .misha for their sources)
REFERENCE_TRAIN = TrainConfig(batch_size=32, steps=1000, lr=3e-4, warmup_steps=0, schedule="constant", grad_clip=0.0,
                              eval_every=200, checkpoint_every=200)
MISHA_TRAIN = replace(REFERENCE_TRAIN, amsgrad=True)
BASELINES = {"reference": (VQVAEConfig.reference, REFERENCE_TRAIN), "misha": (VQVAEConfig.misha, MISHA_TRAIN)}


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
    parser.add_argument("--extend", action="store_true",
                        help="train a finished run in --out on to a larger budget (else a changed budget is refused)")
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
    train.add_argument("--model", choices=("profile", *BASELINES), default="profile",
                       help="'reference': the DeepMind Sonnet example's configuration (Adam 3e-4, batch 32); "
                            "'misha': MishaLaskin/vqvae's (Adam 3e-4 amsgrad, batch 32, codebook loss)")
    train.add_argument("--recon-loss", choices=RECON_LOSSES,
                       help="the reconstruction term: 'mse', the paper's squared error, or 'l1+grad', the absolute "
                            "error of the pixels and of their differences (default: the profile's, l1+grad)")
    _training_options(train, "run folder: writes OUT/vqvae.pt and OUT/history.json")
    train.add_argument("--group-by", metavar="REGEX",
                       help="split a source without splits of its own by group, not by file: the regex's group "
                            "(named 'group', else the first) in each file's path relative to the source names its "
                            "group, e.g. a subject id; stored in the checkpoint, so evaluation, code maps and the "
                            "prior use the same split")

    ev = sub.add_parser("evaluate", help="score a trained VQ-VAE on a split")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--data", default="default")
    ev.add_argument("--split", help="default: test (the source's own, else its seeded 80/10/10 split)")
    ev.add_argument("--group-by", metavar="REGEX",
                    help="default: the checkpoint's own (see train-vqvae --group-by); another one is refused")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--device")
    ev.add_argument("--threads", type=_positive(int))

    prior = sub.add_parser("train-prior", help="train a PixelCNN prior on a VQ-VAE's code maps (resumes)")
    prior.add_argument("--vqvae", required=True, help="the VQ-VAE checkpoint whose codes the prior models")
    prior.add_argument("--data", default="default", help="slice source (default: %(default)s)")
    prior.add_argument("--profile", choices=PROFILES, help="prior size and steps (default: $VQVAE_PROFILE or class)")
    _training_options(prior, "run folder: writes OUT/prior.pt, OUT/prior-support.pt (the codes the training maps "
                             "have at each position) and OUT/prior_history.json")

    smp = sub.add_parser("sample", help="sample code maps from a prior, decode them, save a PNG grid")
    smp.add_argument("--vqvae", required=True)
    smp.add_argument("--prior", required=True)
    smp.add_argument("-n", type=_positive(int), default=16, help="number of samples (default: %(default)s)")
    smp.add_argument("--label", help="a conditional prior's label (a name or an index); default: labels in the "
                                     "training slices' proportions (each in turn for a prior saved without them)")
    smp.add_argument("--profile", choices=PROFILES, help="whose sampling settings are the defaults (default: "
                                                         "$VQVAE_PROFILE or class)")
    smp.add_argument("--temperature", type=_positive(float), help="default: the profile's")
    smp.add_argument("--top-k", type=int, help="keep the k likeliest codes; 0: all of them (default: the profile's)")
    smp.add_argument("--support", choices=SUPPORTS,
                     help="draw only codes the training maps have at each position ('position'), in maps of the "
                          "sample's label ('label'), 'label' for slice-depth labels and 'position' otherwise "
                          "('depth'), or any code ('none') (default: the profile's)")
    smp.add_argument("--support-radius", type=int, help="... or within this many positions (default: the profile's)")
    smp.add_argument("--seed", type=int, default=0)
    smp.add_argument("--naive", action="store_true", help="the reference sampler (a full forward pass per code)")
    smp.add_argument("--out", required=True, help="PNG file for the grid of decoded samples")
    smp.add_argument("--save-dir", help="also write each sample as DIR/sample_0000.png, ... and DIR/samples.json "
                                        "(its label, seed, temperature, top_k), for sample-quality")
    smp.add_argument("--device")
    smp.add_argument("--threads", type=_positive(int))

    sq = sub.add_parser("sample-quality", help="score saved samples against real slices, beside real held-out ones")
    sq.add_argument("--samples", required=True, help="a folder written by sample --save-dir (or any square PNGs)")
    sq.add_argument("--data", default="default", help="the slice source the samples imitate (default: %(default)s)")
    sq.add_argument("--n-real", type=_positive(int),
                    help="held-out real slices scored for the ceiling (default: as many as samples, at most half)")
    sq.add_argument("--no-two-sample", action="store_true", help="skip the classifier two-sample test (slowest)")
    sq.add_argument("--seed", type=int, default=0, help="picks of real slices, pairs, the two-sample test")
    sq.add_argument("--json", action="store_true", help="print one JSON object")
    sq.add_argument("--threads", type=_positive(int))
    return parser


def _train_config(args) -> tuple[VQVAEConfig, TrainConfig, int]:
    from .data import load_dataset

    profile = get_profile(args.profile)
    size = args.image_size or profile.image_size
    if args.model in BASELINES:
        if args.recon_loss is not None:
            raise ValueError(f"--recon-loss applies to the profile's model; --model {args.model} trains on its own "
                             "source's loss (the squared error divided by the data's variance)")
        make_config, baseline_train = BASELINES[args.model]
        # both divide the reconstruction MSE by the variance of the training slices in [0, 1]
        variance = float(load_dataset(args.data, "train", size, group_by=args.group_by).images.float().div(255).var())
        model_cfg = make_config().with_data_variance(variance)
        train_cfg = replace(baseline_train, eval_every=profile.vqvae_train.eval_every)
    else:
        model_cfg, train_cfg = profile.vqvae, profile.vqvae_train
        if args.recon_loss is not None:
            model_cfg = replace(model_cfg, recon_loss=args.recon_loss)
    train_cfg = train_cfg.with_budget(args.minutes, args.steps)
    return model_cfg, replace(train_cfg, **_train_overrides(args)), size


def _print_summary(summary: dict) -> None:
    """One JSON line, from rank 0 alone under torchrun."""
    if distributed.is_main():
        print(json.dumps(summary))


def cmd_train(args) -> int:
    from .pipeline import throughput, train_vqvae

    model_cfg, train_cfg, size = _train_config(args)
    device = distributed.setup(get_device(args.device))
    started = time.perf_counter()
    result = train_vqvae(args.data, args.out, model_cfg, train_cfg, size, device=device,
                         progress=not args.no_progress, extend=args.extend, group_by=args.group_by)
    history = result.history
    summary = {
        "checkpoint": str(result.checkpoint), "steps": result.step, "planned_steps": result.planned_steps,
        "stopped": result.stopped, "seed": train_cfg.seed,
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
    from .pipeline import evaluation_report, load_vqvae

    model = load_vqvae(args.checkpoint, get_device(args.device))
    summary = evaluation_report(model, args.data, args.split, group_by=args.group_by)
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>22}: {value:.4f}" if isinstance(value, float) else f"{key:>22}: {value}")
    return 0


def cmd_train_prior(args) -> int:
    from .pipeline import throughput, train_prior

    profile = get_profile(args.profile)
    train_cfg = replace(profile.prior_train.with_budget(args.minutes, args.steps), **_train_overrides(args))
    device = distributed.setup(get_device(args.device))
    started = time.perf_counter()
    result = train_prior(args.vqvae, args.data, args.out, profile.prior, train_cfg, device=device,
                         progress=not args.no_progress, extend=args.extend)
    summary = {
        "checkpoint": str(result.checkpoint), "steps": result.step, "planned_steps": result.planned_steps,
        "stopped": result.stopped, "seed": train_cfg.seed,
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


def sampling_settings(args) -> SamplingConfig:
    """The command line's sampling settings where given, else the profile's ``sampling``; top-k 0 is all."""
    defaults = get_profile(args.profile).sampling
    top_k = defaults.top_k if args.top_k is None else args.top_k or None
    if top_k is not None and top_k < 0:
        raise ValueError(f"--top-k must be >= 0 (0: every code), got {top_k}")
    if args.support_radius is not None and args.support_radius < 0:
        raise ValueError(f"--support-radius must be >= 0, got {args.support_radius}")
    pick = lambda given, default: default if given is None else given  # noqa: E731
    return SamplingConfig(temperature=pick(args.temperature, defaults.temperature), top_k=top_k,
                          support=pick(args.support, defaults.support),
                          support_radius=pick(args.support_radius, defaults.support_radius))


def save_grid(images: torch.Tensor, path: str | Path, nrow: int, padding: int = 2) -> None:
    """Images (B, 1, H, W) in [0, 1] as one RGB PNG grid, ``nrow`` to a row with ``padding`` black pixels around
    each: the file torchvision's ``save_image(images, path, nrow=nrow, padding=padding)`` writes (byte for byte,
    for B >= 2), without importing torchvision, which loads torch._dynamo (about a second on 2 cores)."""
    from PIL import Image

    n, _, h, w = images.shape
    cols = min(nrow, n)
    grid = images.new_zeros(3, math.ceil(n / cols) * (h + padding) + padding, cols * (w + padding) + padding)
    for i, image in enumerate(images):
        top, left = padding + i // cols * (h + padding), padding + i % cols * (w + padding)
        grid[:, top:top + h, left:left + w] = image.float()
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu", torch.uint8).numpy()
    Image.fromarray(pixels).save(path, format="PNG")


def cmd_sample(args) -> int:
    from .checkpoint import load_prior, load_vqvae
    from .sampling import decode, default_labels, sample, support_for

    settings = sampling_settings(args)
    args.temperature, args.top_k = settings.temperature, settings.top_k
    device = get_device(args.device)
    vqvae = load_vqvae(args.vqvae, device)
    prior = load_prior(args.prior, device, vqvae_path=args.vqvae)
    support = support_for(prior, settings.support, settings.support_radius)
    label = _label_index(args.label, prior.label_names)
    if label is None and prior.config.n_labels:  # a conditional prior without --label: the training proportions
        labels = default_labels(prior, args.n)
    else:
        labels = None if label is None else torch.full((args.n,), label)
    started = time.perf_counter()
    codes = sample(prior, args.n, labels=labels, temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                   naive=args.naive, support=support)
    sampled = time.perf_counter()
    images = decode(vqvae, codes)
    decoded = time.perf_counter()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_grid(images, args.out, nrow=max(1, round(args.n ** 0.5)))
    if args.save_dir:
        from .sample_quality import save_samples

        records = [{"label": None if labels is None else int(label),
                    "label_name": None if labels is None else prior.label_names[label],
                    "seed": args.seed, "temperature": args.temperature, "top_k": args.top_k,
                    "support": settings.support, "support_radius": settings.support_radius}
                   for label in (labels.tolist() if labels is not None else [None] * args.n)]
        save_samples(args.save_dir, images, records, image_size=images.shape[-1], label_names=prior.label_names,
                     label_kind=prior.label_kind, vqvae=str(args.vqvae), prior=str(args.prior),
                     sampler="naive" if args.naive else "fast")
    print(json.dumps({
        "out": str(args.out), "save_dir": args.save_dir, "n": args.n, "latent_shape": list(codes.shape[1:]),
        "sampler": "naive" if args.naive else "fast", "sample_seconds": round(sampled - started, 3),
        "decode_seconds": round(decoded - sampled, 3),
        "labels": None if labels is None else [prior.label_names[i] for i in labels.tolist()],
        "temperature": args.temperature, "top_k": args.top_k, "support": settings.support,
        "support_radius": settings.support_radius, "seed": args.seed, "device": str(device),
        "threads": torch.get_num_threads(),
    }))
    return 0


def _quality_labels(samples, train, held) -> tuple:
    """(train labels, requested labels, held-out labels) for depth agreement, or three Nones: it needs the label
    of every sample in samples.json and data labelled as the prior was (the same label names)."""
    from .codemaps import conditioning_labels

    names, requested = samples.meta.get("label_names") or [], [r.get("label") for r in samples.records]
    if not names or None in requested:
        return None, None, None
    train_labels, train_names, _ = conditioning_labels(train, len(names))
    if train_labels is None or train_names != names:
        print(f"note: no depth agreement: the samples' labels {names} are not the data's {train_names}",
              file=sys.stderr)
        return None, None, None
    depth_range = None if train.slice_index is None else (int(train.slice_index.min()), int(train.slice_index.max()))
    held_labels, _, _ = conditioning_labels(held, len(names), depth_range)  # the train split's bucket edges
    return train_labels, torch.tensor(requested), held_labels


def _nan_to_none(summary: dict) -> dict:
    """NaN (e.g. intensities of samples without brain pixels) -> None, which JSON writes as null."""
    return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in summary.items()}


def cmd_sample_quality(args) -> int:
    from . import pipeline
    from .data import load_dataset
    from .sample_quality import load_samples, measure, real_ceiling

    samples = load_samples(args.samples)
    size = samples.images.shape[-1]
    train = load_dataset(args.data, "train", size)                    # at the samples' size
    held = pipeline.held_out(args.data, size)
    if len(held) < 2 or (args.n_real is not None and args.n_real >= len(held)):
        raise ValueError(f"--n-real must be below the {len(held)} held-out ({held.split}) slices of {args.data}, "
                         f"and there must be at least 2 of them; got --n-real {args.n_real}")
    n_real = args.n_real or max(1, min(len(samples.images), len(held) // 2))
    train_labels, requested, held_labels = _quality_labels(samples, train, held)
    two_sample = not args.no_two_sample
    report = {
        "samples": _nan_to_none(measure(samples.images, held.images, train.images, train_labels=train_labels,
                                        requested_labels=requested, two_sample=two_sample, seed=args.seed).summary()),
        "real": _nan_to_none(real_ceiling(held.images, train.images, n_real, train_labels=train_labels,
                                          real_labels=held_labels, two_sample=two_sample, seed=args.seed).summary()),
        "n": len(samples.images), "split": held.split, "source": str(held.source),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{len(samples.images)} samples from {args.samples} vs {held.source} ({held.split} split for the real "
          f"ceiling, train split for nearest neighbours)")
    print(f"{'':>28} {'samples':>10} {'real':>10}")
    for key in dict.fromkeys([*report["samples"], *report["real"]]):
        cells = [report[side].get(key) for side in ("samples", "real")]
        if any(isinstance(c, list) for c in cells):
            continue                                    # each critic's accuracy: in --json; their mean is printed
        print(f"{key:>28} " + " ".join(f"{'-':>10}" if c is None else f"{c:>10.4f}" if isinstance(c, float)
                                       else f"{c:>10}" for c in cells))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        commands = {"train-vqvae": cmd_train, "evaluate": cmd_evaluate, "train-prior": cmd_train_prior,
                    "sample": cmd_sample, "sample-quality": cmd_sample_quality}
        return commands[args.command](args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        distributed.teardown()


if __name__ == "__main__":
    sys.exit(main())
