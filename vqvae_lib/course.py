"""The course models: a VQ-VAE and its PixelCNN prior trained once, longer than a class can, and shipped with the
repository in ``pretrained/default/`` (``pretrained/README.md``: the commands that made them, their sizes; their
scores: benchmarks/RESULTS.md, "The course models"). Under
the ``pretrained`` profile (``PRETRAINED = True`` in a notebook) the pipeline loads them instead of training.

Before use they are copied into the profile's run folder (runs/pretrained-default/, theirs alone), so that the code
maps cached from them go where a trained run's go and the repository's files stay as committed. Loading never
trains: a course model that does not load with this code, is unfinished, or belongs to another VQ-VAE is refused by
name, with what to do.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from .checkpoint import checkpoint_fingerprint, load_checkpoint, load_prior, load_vqvae
from .config import Profile, TrainConfig, get_profile
from .data import load_dataset
from .train import FitResult, finished_reason
from .utils import atomic_write_bytes, checkout_root, get_device

VQVAE_FILES = ("vqvae.pt", "history.json")
PRIOR_FILES = ("prior.pt", "prior-support.pt", "prior_history.json")
RETRAIN = ("make them again with the commands in pretrained/README.md (the profile 'pretrained'), or train your "
           "own (PRETRAINED = False)")


class CourseModelError(ValueError):
    """A course model that is missing, or does not fit this code or this machine's data."""


def course_dir(profile: Profile) -> Path:
    """The checkout's folder of ``profile``'s course models (``Profile.course_models``)."""
    if not profile.course_models:
        raise CourseModelError(f"the profile {profile.name!r} has no course models: use the profile 'pretrained'")
    root = checkout_root()
    if root is None:
        raise CourseModelError(f"the course models ship with the repository ({profile.course_models}/), not with a "
                               "pip-installed vqvae_lib: clone the repository, or train your own (PRETRAINED = False)")
    return root / profile.course_models


def install(profile: Profile, source: str, out_dir: Path, names: tuple[str, ...]) -> Path:
    """Copy the course files ``names`` into ``out_dir``, the course models' own run folder (atomically; a copy
    that already matches is kept); refuses a source other than the built-in data, which they were trained on."""
    if str(source) not in ("default", "mni152"):
        raise CourseModelError(f"the course models were trained on the built-in data (SOURCE = 'default'), not on "
                               f"{source!r}: for other slices train your own (PRETRAINED = False)")
    folder = course_dir(profile)
    out_dir = Path(out_dir)
    for name in names:
        origin = folder / name
        if not origin.is_file():
            raise CourseModelError(f"the course model file {origin} is missing: {RETRAIN}")
        payload, copy = origin.read_bytes(), out_dir / name
        if not copy.is_file() or copy.read_bytes() != payload:
            atomic_write_bytes(copy, payload)
    return out_dir


def available(profile: Profile) -> bool:
    """Whether this checkout has ``profile``'s course model files (a plain pip install has none)."""
    try:
        folder = course_dir(profile)
    except CourseModelError:
        return False
    return all((folder / name).is_file() for name in VQVAE_FILES + PRIOR_FILES)


def comparison_skipped(profile: Profile, source: str) -> str | None:
    """Why notebook 05 cannot set the course prior beside the student's, in words; None when it can."""
    if profile.course_models:
        return "PRETRAINED = True: the samples above come from the course prior already; train your own to compare"
    if str(source) not in ("default", "mni152"):
        return f"the course models know the built-in data, not {source!r}: set SOURCE = 'default' to compare"
    if not available(get_profile("pretrained")):
        return "this installation has no course models (they ship with the repository, in pretrained/default/)"
    return None


@contextmanager
def refused_by_name(what: str, origin: Path):
    """Turn a failure to load a course model into a ``CourseModelError`` that names its file and what to do."""
    try:
        yield
    except CourseModelError:
        raise
    except (ValueError, RuntimeError, KeyError, TypeError) as err:
        raise CourseModelError(f"the course {what} {origin} does not load with this vqvae_lib ({err}): "
                               f"{RETRAIN}") from err


def fitted(path: Path, model: torch.nn.Module, origin: Path) -> FitResult:
    """The ``FitResult`` of a finished checkpoint, as ``train.fit`` returns when it loads one: its history, steps,
    training time and why it stopped; refuses an unfinished one (``origin``: its file in the checkout)."""
    ckpt = load_checkpoint(path, map_location="cpu")
    cfg, step, planned = TrainConfig(**ckpt["train_config"]), int(ckpt["step"]), int(ckpt["planned_steps"])
    if step < planned:
        raise CourseModelError(f"the course model {origin} stopped at step {step} of {planned}: {RETRAIN}")
    return FitResult(model=model, history={k: list(v) for k, v in ckpt["history"].items()}, step=step,
                     train_seconds=float(ckpt["train_seconds"]), stopped=finished_reason(cfg, planned),
                     checkpoint=path, start_step=step, planned_steps=planned, minutes=cfg.minutes)


def load_course_vqvae(profile: Profile, source: str, out_dir: Path) -> tuple[torch.nn.Module, FitResult]:
    """The course VQ-VAE, copied into ``out_dir`` and loaded, with its training run; refused when it does not
    load with this code. Built-in slices with other bytes than those it was trained on (another template version,
    or another platform's rounding) only warn: the slices are the same images, and its scores may differ a little."""
    run = install(profile, source, out_dir, VQVAE_FILES)
    origin, path = course_dir(profile) / "vqvae.pt", run / "vqvae.pt"
    with refused_by_name("VQ-VAE", origin):
        model = load_vqvae(path, get_device())
        result = fitted(path, model, origin)
        stored = load_checkpoint(path, map_location="cpu")["fingerprint"]
    here = load_dataset(source, "train", model.image_size).fingerprint
    if stored != here:
        warnings.warn(f"the course VQ-VAE {origin} was trained on built-in slices with fingerprint {stored!r}, but "
                      f"this machine's have {here!r} (another template version or platform): its scores may differ "
                      "a little from its record", stacklevel=2)
    return model, result


def load_course_prior(profile: Profile, source: str, out_dir: Path) -> tuple[torch.nn.Module, FitResult]:
    """The course prior (with its code support), copied into ``out_dir`` beside the course VQ-VAE and loaded, with
    its training run; refused when it does not load with this code or belongs to another VQ-VAE."""
    run = install(profile, source, out_dir, VQVAE_FILES + PRIOR_FILES)   # its VQ-VAE beside it (not loaded here)
    origin, path = course_dir(profile) / "prior.pt", run / "prior.pt"
    with refused_by_name("prior", origin):
        meta = load_checkpoint(path, map_location="cpu")["meta"]
        if meta.get("vqvae_fingerprint") != checkpoint_fingerprint(run / "vqvae.pt"):
            raise CourseModelError(f"the course prior {origin} was trained on the codes of another VQ-VAE than "
                                   f"{course_dir(profile) / 'vqvae.pt'}: {RETRAIN}")
        model = load_prior(path, get_device())
        result = fitted(path, model, origin)
    return model, result
