"""Device choice, seeding, project paths and atomic file writes: one of each."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from contextlib import contextmanager
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


# The devices training may autocast on (precision="bf16"); every torch the package allows has autocast there, and
# the quantizer switches it off there. Not MPS: older torch refuses torch.autocast("mps") even to switch it off.
AUTOCAST_DEVICES = ("cuda", "cpu")

# Devices without float64 arithmetic (Apple's MPS): sampling, training and evaluation compute in float32 there
# (``exact_dtype``). Tests add "cpu" to check that nothing puts a float64 tensor on such a device.
NO_FLOAT64_DEVICES = {"mps"}


def has_float64(device: torch.device | str) -> bool:
    """Whether ``device`` computes in float64 (every device but those in ``NO_FLOAT64_DEVICES``)."""
    return torch.device(device).type not in NO_FLOAT64_DEVICES


def exact_dtype(device: torch.device | str) -> torch.dtype:
    """The most exact float on ``device``: float64, or float32 where it has none (``has_float64``)."""
    return torch.float64 if has_float64(device) else torch.float32


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded the same."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextmanager
def evaluating(model: torch.nn.Module):
    """Run a block with ``model`` in eval mode, then put back the mode it had (also when the block raises)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def checkout_root() -> Path | None:
    """The repository folder this package was imported from (it holds ``pyproject.toml`` and
    ``benchmarks/``): a clone, installed editable or on the path; None for a plain ``pip install``, where the
    package lies in site-packages."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "benchmarks").is_dir() else None


def user_home() -> Path:
    """The per-user folder of a plain install: ``%LOCALAPPDATA%\\vqvae_lib`` on Windows,
    ``~/Library/Application Support/vqvae_lib`` on macOS, ``$XDG_DATA_HOME/vqvae_lib`` (``~/.local/share``)
    elsewhere."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "vqvae_lib"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "vqvae_lib"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "vqvae_lib"


def project_root() -> Path:
    """Where data, runs and figures go: ``$VQVAE_HOME`` when set, else the repository folder of a checkout,
    else (a plain ``pip install``) the per-user folder ``user_home()``: never inside site-packages.

    Paths never come from the current working directory: nbval starts each kernel in
    the notebook's own folder.
    """
    env = os.environ.get("VQVAE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return checkout_root() or user_home()


def display_path(path: str | os.PathLike | None) -> str:
    """``path`` as a reader should see it: relative to the project folder when inside it (``runs/...``,
    ``data/mni152``), ``~/...`` when under the home folder, else unchanged; no machine's layout leaks into
    a printed line or a committed notebook."""
    if path is None:
        return "-"
    path = Path(path).expanduser()
    if not path.is_absolute():
        return str(path)
    try:
        resolved = path.resolve()
    except OSError:
        return str(path)
    for base, prefix in ((project_root(), ""), (Path.home().resolve(), "~/")):
        try:
            return prefix + str(resolved.relative_to(base))
        except ValueError:
            continue
    return str(path)


def run_commit() -> str:
    """The repository's commit (``git describe --always --dirty``), or "unknown" outside a git checkout."""
    try:
        root = checkout_root()
        if root is None:
            return "unknown"
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
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


def atomic_write(path: str | os.PathLike, write) -> None:
    """The one atomic file write: ``write(handle)`` fills a temporary file in the same folder, which is
    flushed and fsynced, then renamed over ``path``, then the folder is fsynced (so the rename itself survives
    a power cut). A crash at any moment leaves the old file or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows, where folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (``atomic_write``)."""
    atomic_write(path, lambda handle: handle.write(payload))


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (``atomic_write``)."""
    atomic_write(path, lambda handle: torch.save(obj, handle))
