"""Train, save, load and evaluate a VQ-VAE and its PixelCNN prior on a slice source: what the notebooks, the
CLI and the benchmarks share. ``load_or_train_vqvae`` and ``load_or_train_prior`` let every later notebook
run on its own."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import torch

from . import course, distributed
from .checkpoint import (  # noqa: F401  (load_vqvae and load_prior are part of the pipeline's interface)
    check_prior_vqvae,
    checkpoint_fingerprint,
    describe_prior,
    load_checkpoint,
    load_prior,
    load_vqvae,
    save_code_support,
)
from .codemaps import load_code_maps
from .config import PixelCNNConfig, Profile, TrainConfig, VQVAEConfig, get_profile
from .data import SliceDataset, default_eval_split, load_dataset, spread_images, spread_subset
from .leakage import LEAKAGE_SSIM, leakage_share
from .metrics import ReconstructionEval, evaluate_reconstruction, reconstruction_validator
from .prior import build_prior, prior_loss, prior_validator
from .sampling import code_support
from .train import FitResult, fit
from .utils import atomic_write_bytes, get_device, runs_dir, set_seed
from .vqvae import VQVAE, vqvae_loss

VAL_IMAGES = 256  # held-out slices scored at each validation during training ...
VAL_CODE_MAPS = 512  # ... and code maps at each validation of the prior: a seeded draw spread over the split's
                     # subjects (or classes, or depth bands), the same for every run (``data.spread_subset``)


def source_tag(source: str) -> str:
    """A short folder-safe name for a source: ``default`` or the folder's name."""
    name = "default" if str(source) in ("default", "mni152") else Path(str(source)).expanduser().resolve().name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name) or "source"


def default_run_dir(profile: Profile, source: str = "default") -> Path:
    return runs_dir() / f"{profile.name}-{source_tag(source)}"


def held_out(source: str, image_size: int, split: str | None = None, group_by: str | None = None) -> SliceDataset:
    """The split scores are reported on: ``test`` (the source's own, by subject, or the seeded 80 / 10 / 10
    split by file, or by group with ``group_by``: see ``data.load_dataset``)."""
    return load_dataset(source, split or default_eval_split(source), image_size, group_by=group_by)


def train_vqvae(source: str, out_dir: str | Path, model_cfg: VQVAEConfig, train_cfg: TrainConfig,
                image_size: int, *, device: torch.device | None = None, progress: bool = True,
                val_images: int = VAL_IMAGES, extend: bool = False, group_by: str | None = None) -> FitResult:
    """Train (or resume, or just load when finished) ``out_dir/vqvae.pt``; history goes to history.json.

    Validation uses the source's ``validate`` split; ``group_by`` (a regex, see ``data.load_dataset``) splits a
    source without splits of its own by group instead of by file, and is stored in the checkpoint: evaluation,
    code maps and the prior then use the same split. The generators are seeded with ``train_cfg.seed`` before
    the model is built, so one seed gives one set of initial weights. ``extend``: see ``train.fit``.
    """
    device = device or get_device()
    with distributed.main_first():  # under torchrun, rank 0 builds the data cache, the others read it
        train_set = load_dataset(source, "train", image_size, group_by=group_by)
        val_set = load_dataset(source, "validate", image_size, group_by=group_by)
    out_dir = Path(out_dir)
    set_seed(train_cfg.seed)
    model = VQVAE(model_cfg).to(device)
    model.image_size = image_size
    meta = {"kind": "vqvae", "config": model_cfg.to_dict(), "image_size": image_size,
            "source": str(train_set.source), "layout": train_set.layout, "split_kind": train_set.split_kind}
    if group_by is not None:
        meta["group_by"] = group_by
    result = fit(model, train_set.images, vqvae_loss, train_cfg, checkpoint=out_dir / "vqvae.pt",
                 validate=reconstruction_validator(spread_images(val_set, val_images)), meta=meta,
                 fingerprint=train_set.fingerprint, progress=progress, extend=extend)
    write_history(out_dir / "history.json", result, "images_per_second", train_cfg.batch_size)
    return result


def write_history(path: Path, result: FitResult, rate_name: str, batch_size: int) -> None:
    """A run's history, step count, stop reason and throughput as JSON (rank 0 alone under torchrun)."""
    payload = {"history": result.history, "steps": result.step, "train_seconds": result.train_seconds,
               "stopped": result.stopped, rate_name: throughput(result, batch_size),
               "processes": distributed.world_size()}
    if distributed.is_main():
        atomic_write_bytes(path, json.dumps(payload).encode())


def throughput(result: FitResult, batch_size: int) -> float:
    """Training examples per second of training time, over all processes (``batch_size`` is per process)."""
    seen = result.step * batch_size * distributed.world_size()
    return seen / result.train_seconds if result.train_seconds > 0 else 0.0


def load_or_train_vqvae(profile: Profile | str | None = None, source: str = "default", *,
                        out_dir: str | Path | None = None, progress: bool = True) -> tuple[VQVAE, FitResult]:
    """The profile's VQ-VAE on ``source``: loaded from runs/<profile>-<source>/vqvae.pt when training
    has finished there, resumed when it was interrupted, trained from scratch otherwise. A profile with course
    models (``pretrained``) loads its course VQ-VAE instead and never trains (``course.load_course_vqvae``)."""
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    out_dir = Path(out_dir) if out_dir is not None else default_run_dir(profile, source)
    if profile.course_models:
        return course.load_course_vqvae(profile, source, out_dir)
    result = train_vqvae(source, out_dir, profile.vqvae, profile.vqvae_train, profile.image_size,
                         progress=progress)
    return result.model, result


def load_or_train_variant(profile: Profile | str | None, source: str, name: str, *, progress: bool = True,
                          **model_changes) -> FitResult:
    """A small side experiment: the profile's VQ-VAE with ``model_changes`` (e.g. ``ema=False``), at the
    profile's ``demo_image_size`` for ``demo_train`` steps; kept in runs/<profile>-<source>/variants/<name>."""
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    out_dir = default_run_dir(profile, source) / "variants" / name
    return train_vqvae(source, out_dir, replace(profile.vqvae, **model_changes), profile.demo_train,
                       profile.demo_image_size, progress=progress)


def model_group_by(model: VQVAE, group_by: str | None) -> str | None:
    """The grouping a model's source was split with at training (``load_vqvae`` sets ``model.group_by``);
    refuses another one, whose test split would hold slices the model trained on."""
    trained = getattr(model, "group_by", None)
    if group_by is not None and trained is not None and group_by != trained:
        raise ValueError(f"this VQ-VAE was trained on a split made with group_by={trained!r}; scoring a split made "
                         f"with group_by={group_by!r} would score slices it trained on")
    if group_by is not None and trained is None and getattr(model, "split_kind", None) == "by file":
        raise ValueError(f"this VQ-VAE was trained on a split by file; scoring a split made with "
                         f"group_by={group_by!r} would score slices it trained on: train with the same group_by")
    return group_by if group_by is not None else trained


def evaluate_vqvae(model: VQVAE, source: str, split: str | None = None, image_size: int | None = None,
                   limit: int | None = None, group_by: str | None = None) -> ReconstructionEval:
    """Per-image SSIM (whole image and brain only) / PSNR / MSE and code usage of ``model`` on a split
    (default: the held-out one); the brain is the split's tissue mask where it has one. The split is made as
    the model's was at training (``model_group_by``)."""
    dataset = held_out(source, image_size or _image_size_of(model), split, model_group_by(model, group_by))
    return _evaluate_on(model, dataset, limit)


def _evaluate_on(model: VQVAE, dataset: SliceDataset, limit: int | None) -> ReconstructionEval:
    """Score the first ``limit`` slices of ``dataset`` (all when ``limit`` is None or 0)."""
    masks = None if dataset.masks is None else dataset.masks[:limit or None]   # (N, S, S)
    return evaluate_reconstruction(model, dataset.images[:limit or None], masks=masks)


def evaluation_report(model: VQVAE, source: str, split: str | None = None, image_size: int | None = None,
                      limit: int | None = None, group_by: str | None = None) -> dict:
    """What ``evaluate`` prints: :func:`evaluate_vqvae`'s summary, the split scored, how it was made
    (``split_kind``) and ``leakage_share_ssim_0.9``: the share of its slices whose most similar slice of the
    train split has SSIM above 0.9 (``leakage.leakage_share``; 1 when the split scored is ``train`` itself)."""
    size = image_size or _image_size_of(model)
    group_by = model_group_by(model, group_by)
    dataset = held_out(source, size, split, group_by)
    summary = _evaluate_on(model, dataset, limit).summary()
    train = load_dataset(source, "train", size, group_by=group_by)
    leaked = leakage_share(dataset.images[:limit or None], train.images, LEAKAGE_SSIM)
    return {**summary, "split": dataset.split, "split_kind": dataset.split_kind,
            f"leakage_share_ssim_{LEAKAGE_SSIM}": leaked}


def _image_size_of(model: VQVAE) -> int:
    size = getattr(model, "image_size", None)
    if size is None:
        raise ValueError("pass image_size: this model does not record the size it was trained at")
    return size


def train_prior(vqvae_path: str | Path, source: str, out_dir: str | Path, model_cfg: PixelCNNConfig,
                train_cfg: TrainConfig, *, device: torch.device | None = None, progress: bool = True,
                extend: bool = False) -> FitResult:
    """Train (or resume, or just load when finished) ``out_dir/prior.pt``: the gated PixelCNN ``model_cfg``
    describes, on the code maps of ``source``'s train split under the VQ-VAE ``vqvae_path``, conditional on their
    labels when the source has labels (slice depth bands, classes). Validation: bits per code on the validate split.
    History goes to ``out_dir/prior_history.json``. Refuses a ``prior.pt`` made with another VQ-VAE.
    """
    device = device or get_device()
    vqvae_path, out_dir = Path(vqvae_path), Path(out_dir)
    path, vqvae_fingerprint = out_dir / "prior.pt", checkpoint_fingerprint(vqvae_path)
    if path.exists():
        check_prior_vqvae(load_checkpoint(path, map_location="cpu")["meta"], path, vqvae_path, vqvae_fingerprint)
    with distributed.main_first():  # under torchrun, rank 0 encodes and caches the code maps, the others read them
        train_maps = load_code_maps(vqvae_path, source, "train", n_buckets=model_cfg.depth_buckets, device=device)
        val_maps = load_code_maps(vqvae_path, source, "validate", n_buckets=model_cfg.depth_buckets, device=device)
    cfg = replace(model_cfg, codebook_size=train_maps.codebook_size, height=train_maps.shape[0],
                  width=train_maps.shape[1],
                  n_labels=train_maps.n_labels)
    meta = {"kind": "prior", "config": cfg.to_dict(), "vqvae_fingerprint": vqvae_fingerprint,
            "vqvae_path": str(vqvae_path), "source": str(source), "latent_shape": list(train_maps.shape),
            "label_names": train_maps.label_names if cfg.n_labels else [],
            "label_kind": train_maps.label_kind if cfg.n_labels else "none"}
    val = spread_subset(len(val_maps), VAL_CODE_MAPS, val_maps.labels)
    val_labels = val_maps.labels[val] if cfg.n_labels else None
    set_seed(train_cfg.seed)  # before the model is built: one seed, one set of initial weights
    model = build_prior(cfg).to(device)
    result = fit(describe_prior(model, meta), train_maps.indices, prior_loss, train_cfg,
                 labels=train_maps.labels if cfg.n_labels else None, checkpoint=path,
                 validate=prior_validator(val_maps.indices[val], val_labels), meta=meta,
                 fingerprint=train_maps.key, progress=progress, extend=extend)
    write_history(out_dir / "prior_history.json", result, "maps_per_second", train_cfg.batch_size)
    # which codes the training maps have at each position (per label): what sampling may restrict itself to
    result.model.code_support = code_support(train_maps.indices, cfg.codebook_size,
                                             train_maps.labels if cfg.n_labels else None, cfg.n_labels)
    # ... and how many training maps have each label: the proportions a sample's label is drawn in by default
    result.model.label_counts = (torch.bincount(train_maps.labels.cpu(), minlength=cfg.n_labels)
                                 if cfg.n_labels else None)
    if distributed.is_main():
        save_code_support(path, result.model.code_support, train_maps.key, result.model.label_counts)
    return result


def load_or_train_prior(profile: Profile | str | None = None, source: str = "default", *,
                        out_dir: str | Path | None = None, progress: bool = True) -> tuple[torch.nn.Module, FitResult]:
    """The profile's PixelCNN prior on ``source``: runs/<profile>-<source>/prior.pt, over the codes of the
    profile's VQ-VAE in the same folder (which ``load_or_train_vqvae`` loads or trains first); loaded when
    training has finished, resumed when it was interrupted, trained from scratch otherwise; the course prior
    under a profile with course models (``course.load_course_prior``)."""
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    out_dir = Path(out_dir) if out_dir is not None else default_run_dir(profile, source)
    if profile.course_models:
        return course.load_course_prior(profile, source, out_dir)
    load_or_train_vqvae(profile, source, out_dir=out_dir, progress=progress)
    result = train_prior(out_dir / "vqvae.pt", source, out_dir, profile.prior, profile.prior_train,
                         progress=progress)
    return result.model, result


def load_or_train_prior_variant(profile: Profile | str | None, source: str, name: str, *, steps: int,
                                progress: bool = True, **model_changes) -> FitResult:
    """A small side experiment: the profile's prior with ``model_changes`` (e.g. ``n_layers=2``), trained ``steps``
    steps on the code maps of the profile's VQ-VAE (loaded or trained first); kept in
    runs/<profile>-<source>/prior-variants/<name>, so a second call loads it."""
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    run_dir = default_run_dir(profile, source)
    load_or_train_vqvae(profile, source, out_dir=run_dir, progress=progress)
    train_cfg = replace(profile.prior_train.with_budget(steps=steps),
                        warmup_steps=min(profile.prior_train.warmup_steps, steps // 5))
    return train_prior(run_dir / "vqvae.pt", source, run_dir / "prior-variants" / name,
                       replace(profile.prior, **model_changes), train_cfg, progress=progress)


def profile_code_maps(profile: Profile | str | None = None, source: str = "default", split: str = "train", *,
                      out_dir: str | Path | None = None):
    """The ``CodeMaps`` of a split under the profile's VQ-VAE (runs/<profile>-<source>/vqvae.pt, which must
    exist: see ``load_or_train_vqvae``), labelled as the profile's prior expects; cached."""
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    out_dir = Path(out_dir) if out_dir is not None else default_run_dir(profile, source)
    return load_code_maps(out_dir / "vqvae.pt", source, split, n_buckets=profile.prior.depth_buckets)
