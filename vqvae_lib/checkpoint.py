"""Checkpoints in one place: the atomic save, the loader with clear errors, fingerprints, the check that
a checkpoint on disk is the run that was asked for, and the trained models read back from their files
(``load_vqvae``, ``load_prior``).

A checkpoint is a dict saved with ``torch.save`` and read back with ``weights_only=True`` (tensors, numbers,
strings, lists and dicts only: nothing in it can run code). ``train.fit`` writes it; its keys:
``format`` (``CHECKPOINT_FORMAT``), ``meta`` (what the model is: kind, model config, image size, ...),
``train_config`` (the training settings as asked for), ``planned_steps`` (the step count the budget was
turned into), ``model``, ``optimizer``, ``step``, ``train_seconds``, ``history``, ``sampler``, ``rng`` and
``fingerprint`` (of the training data).
"""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch

from .config import PixelCNNConfig, TrainConfig, VQVAEConfig
from .prior import build_prior
from .utils import atomic_torch_save, get_device
from .vqvae import VQVAE

CHECKPOINT_FORMAT = "vqvae_lib.checkpoint.v1"
# TrainConfig fields that change speed or bookkeeping, not the run: a resumed run may set them differently
FREE_TRAIN_FIELDS = ("eval_every", "checkpoint_every", "precision", "channels_last", "compile")
BUDGET_FIELDS = ("steps", "minutes")   # may change only to extend a finished run, and only when asked
FREE_META_FIELDS = ("source", "vqvae_path",   # paths: data and checkpoints may move (fingerprints decide)
                    "split_kind")              # a description of the split; the data fingerprint and group_by decide
# config fields that earlier versions wrote, with the value every run had unless it tried an experiment that has
# left the library since (benchmarks/RESULTS.md, "What did not win"): read as absent at that value, refused otherwise
REMOVED_FIELDS = {
    VQVAEConfig: {"in_channels": 1, "code_noise": 0.0, "dead_threshold": 1.0},
    TrainConfig: {"lr_min_ratio": 0.05, "weight_decay": 0.0, "weight_ema": 0.0},
    PixelCNNConfig: {"architecture": "gated", "heads": 4, "mirror": False, "init_from_codes": False,
                     "coarse_codes": 0, "coarse_factor": 2, "code_dim": 0, "cond_channels": 0, "mask_steps": 12,
                     "conditional": True},
}
# ... of which these name a rule this version trains by differently: a model made with it loads, but its training is
# not resumed under the new rule (dead-code restarts counted vectors per batch; they count shares now)
CHANGED_RULES = {VQVAEConfig: lambda values: {"dead_threshold"} if values.get("restart_dead", True) else set()}
# config fields added since checkpoints were first written, with the value the runs before them had (where that is
# not the field's default): a stored config without the field had that value
EARLIER_VALUES = {VQVAEConfig: {"recon_loss": "mse"}}


def save_checkpoint(payload: dict, path: str | Path) -> None:
    """Write ``payload`` (plus the format tag) to ``path`` atomically: a temporary file in the same folder,
    flushed and fsynced, renamed over ``path``, the folder fsynced. A crash at any moment leaves either the
    old checkpoint or the new one, never a half-written file."""
    atomic_torch_save({"format": CHECKPOINT_FORMAT, **payload}, path)


def load_checkpoint(path: str | Path, map_location=None) -> dict:
    """Read a checkpoint written by ``train.fit`` (``torch.load(weights_only=True)``); a file that is not one
    gets an error naming it and saying what was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    expected = (f"expected a vqvae_lib checkpoint: a file written by vqvae_lib's training (a dict tagged "
                f"{CHECKPOINT_FORMAT!r} that loads with torch.load(weights_only=True))")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, ImportError) as err:
        reason = "it holds objects other than tensors and plain values" if isinstance(
            err, pickle.UnpicklingError) else "it is not a torch file, or it is truncated"
        raise ValueError(f"{path} is not a vqvae_lib checkpoint ({reason}); {expected}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a vqvae_lib checkpoint (no format tag); {expected}")
    return ckpt


def checkpoint_fingerprint(path: str | Path) -> str:
    """A short sha256 of the checkpoint file's bytes: a key for caches derived from it (code maps)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def differences(stored: dict, requested: dict, skip: tuple[str, ...] = (), defaults: dict | None = None) -> list[str]:
    """``"name: stored -> requested"`` for each field (outside ``skip``) whose two values differ. A field the
    stored dict lacks counts as its value in ``defaults``: it was added since, and the run had its default."""
    stored = {**{n: v for n, v in (defaults or {}).items() if n in requested}, **stored}
    names = [n for n in dict.fromkeys([*stored, *requested]) if n not in skip]
    return [f"{n}: {stored.get(n)!r} -> {requested.get(n)!r}" for n in names if stored.get(n) != requested.get(n)]


def current_fields(config_class, values: dict, resume: bool = False) -> dict:
    """A stored config ``values`` without the fields that have left ``config_class`` at the value every run had
    (``REMOVED_FIELDS``; with ``resume``, those of a changed rule stay, so that comparing with them fails by name).
    Any other unknown field stays, so that comparing or building with it fails by name."""
    removed = REMOVED_FIELDS.get(config_class, {})
    kept = CHANGED_RULES[config_class](values) if resume and config_class in CHANGED_RULES else set()
    return {k: v for k, v in values.items() if k in kept or not (k in removed and v == removed[k])}


def defaults_of(config_class) -> dict:
    """What a stored config without a field had: the value before the field existed (``EARLIER_VALUES``), else its
    default."""
    return {**config_class().to_dict(), **EARLIER_VALUES.get(config_class, {})}


def config_from(config_class, values: dict, path: str | Path):
    """``config_class(**values)`` for a config stored in checkpoint ``path``; a field this version does not have
    gets an error that names it."""
    values = {**EARLIER_VALUES.get(config_class, {}), **current_fields(config_class, values)}
    unknown = sorted(set(values) - set(config_class().to_dict()))
    if unknown:
        raise ValueError(f"checkpoint {path} was made with {', '.join(f'{k}={values[k]!r}' for k in unknown)}, "
                         f"which {config_class.__name__} no longer has (an experiment that left the library: "
                         "benchmarks/RESULTS.md, 'What did not win'); train it again with this version")
    return config_class(**values)


def run_differences(ckpt: dict, meta: dict, train_config: dict) -> list[str]:
    """How the run asked for (``meta`` and ``train_config``) differs from the checkpoint's, budget aside."""
    config_class = {"vqvae": VQVAEConfig, "prior": PixelCNNConfig}.get(meta.get("kind"))
    stored = ckpt.get("meta", {}).get("config", {})
    model = differences(current_fields(config_class, stored, resume=True) if config_class else stored,
                        meta.get("config", {}),
                        defaults=defaults_of(config_class) if config_class else None)
    other_meta = differences({k: v for k, v in ckpt.get("meta", {}).items() if k != "config"},
                             {k: v for k, v in meta.items() if k != "config"}, FREE_META_FIELDS)
    training = differences(current_fields(TrainConfig, ckpt.get("train_config", {})), train_config,
                           FREE_TRAIN_FIELDS + BUDGET_FIELDS,
                           defaults=TrainConfig().to_dict())
    return [f"model {d}" for d in model] + other_meta + [f"training {d}" for d in training]


def budget_of(train_config: dict) -> str:
    """A training budget in words: "steps=2000", "minutes=3.0" or both."""
    return ", ".join(f"{n}={train_config.get(n)}" for n in BUDGET_FIELDS if train_config.get(n) is not None)


def load_vqvae(path: str | Path, device: torch.device | None = None) -> VQVAE:
    """A trained VQ-VAE from its checkpoint, in eval mode (``torch.load(weights_only=True)``)."""
    ckpt = load_checkpoint(path, map_location=device or get_device())
    if ckpt.get("meta", {}).get("kind") != "vqvae":
        raise ValueError(f"{path} is not a VQ-VAE checkpoint (kind={ckpt.get('meta', {}).get('kind')!r})")
    model = VQVAE(config_from(VQVAEConfig, ckpt["meta"]["config"], path)).to(device or get_device())
    model.load_state_dict(ckpt["model"])
    model.image_size = int(ckpt["meta"]["image_size"])
    model.group_by = ckpt["meta"].get("group_by")  # how its source was split (None: by file / the source's own)
    model.split_kind = ckpt["meta"].get("split_kind")
    return model.eval()


def check_prior_vqvae(prior_meta: dict, prior_path: Path, vqvae_path: Path, vqvae_fingerprint: str) -> None:
    """Refuse a prior trained on the codes of another VQ-VAE checkpoint: its codes mean other things."""
    if prior_meta.get("vqvae_fingerprint") != vqvae_fingerprint:
        raise ValueError(
            f"the prior {prior_path} was trained on the codes of the VQ-VAE checkpoint "
            f"{prior_meta.get('vqvae_path')} (fingerprint {prior_meta.get('vqvae_fingerprint')!r}), but "
            f"{vqvae_path} has fingerprint {vqvae_fingerprint!r} (retrained or resumed since?); its codes mean "
            f"other things: delete {prior_path} to train a new prior, or pass the VQ-VAE it was trained with")


def describe_prior(model: torch.nn.Module, meta: dict) -> torch.nn.Module:
    """Attach what sampling needs: the code map shape, the label names, the VQ-VAE it belongs to."""
    model.latent_shape = tuple(meta["latent_shape"])
    model.label_names, model.label_kind = list(meta["label_names"]), meta["label_kind"]
    model.vqvae_fingerprint = meta["vqvae_fingerprint"]
    return model


def support_path(prior_path: str | Path) -> Path:
    """Where a prior's code support lies: ``<folder>/<checkpoint name>-support.pt`` beside its checkpoint."""
    prior_path = Path(prior_path)
    return prior_path.with_name(f"{prior_path.stem}-support.pt")


def save_code_support(prior_path: str | Path, support: torch.Tensor, key: str,
                      label_counts: torch.Tensor | None = None) -> None:
    """Write the code support (L, h, w, K) bool of the maps a prior was trained on (``sampling.code_support``) beside
    its checkpoint, atomically, with the ``key`` of those maps and, for a conditional prior, how many of them have
    each label, ``label_counts`` (L,) (``sampling.default_labels``)."""
    record = {"support": support.cpu(), "key": key}
    if label_counts is not None:
        record["label_counts"] = torch.as_tensor(label_counts).long().cpu()
    atomic_torch_save(record, support_path(prior_path))


def load_code_support(prior_path: str | Path) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """What ``save_code_support`` wrote beside a prior's checkpoint, read once: (support (L, h, w, K) bool, label
    counts (L,) long). The support is None when there is none (a prior trained before supports were written:
    ``train-prior`` on the finished run writes it); the counts are None also for an unconditional prior or one
    saved before counts were."""
    path = support_path(prior_path)
    if not path.exists():
        return None, None
    record = torch.load(path, weights_only=True)
    return record["support"], record.get("label_counts")


def load_prior(path: str | Path, device: torch.device | None = None,
               vqvae_path: str | Path | None = None) -> torch.nn.Module:
    """A trained prior from its checkpoint, in eval mode, with ``latent_shape``, ``label_names``,
    ``label_kind``, ``code_support`` and ``label_counts`` (``load_code_support``: None when none were saved). Given
    ``vqvae_path``, refuses a prior trained on the codes of another checkpoint."""
    ckpt = load_checkpoint(path, map_location=device or get_device())
    meta = ckpt.get("meta", {})
    if meta.get("kind") != "prior":
        raise ValueError(f"{path} is not a prior checkpoint (kind={meta.get('kind')!r})")
    if vqvae_path is not None:
        check_prior_vqvae(meta, Path(path), Path(vqvae_path), checkpoint_fingerprint(vqvae_path))
    model = build_prior(config_from(PixelCNNConfig, meta["config"], path)).to(device or get_device())
    model.load_state_dict(ckpt["model"])
    model.code_support, model.label_counts = load_code_support(path)
    return describe_prior(model, meta).eval()
