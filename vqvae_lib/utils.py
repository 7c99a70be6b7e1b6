"""Device choice, seeding, project paths and atomic file writes: one of each."""
from __future__ import annotations

import os
import random
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the compute device: ``cuda``, then ``mps``, then ``cpu``.

    ``prefer`` (or the environment variable ``VQVAE_DEVICE``) overrides the choice,
    e.g. ``get_device("cpu")`` on a machine with a GPU.
    """
    prefer = prefer or os.environ.get("VQVAE_DEVICE") or None
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} was asked for, but CUDA is not available here")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"device {prefer!r} was asked for, but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded the same."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def project_root() -> Path:
    """The repository folder (holding ``pyproject.toml``), or ``$VQVAE_HOME`` when set.

    Paths never come from the current working directory: nbval starts each kernel in
    the notebook's own folder.
    """
    env = os.environ.get("VQVAE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parent.parent


def run_commit() -> str:
    """The repository's commit (``git describe --always --dirty``), or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=project_root(), capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def data_dir() -> Path:
    return project_root() / "data"


def figures_dir() -> Path:
    path = project_root() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    return project_root() / "runs"


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
