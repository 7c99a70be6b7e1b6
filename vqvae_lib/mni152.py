"""The built-in default data: virtual subjects made from the MNI152 brain template.

OASIS cannot be downloaded without registration, so the course ships a stand-in that needs no
download and is still real anatomy: the MNI152 2009 T1 template (an average of 152 adult brains)
that nilearn bundles in its wheel, with its grey- and white-matter probability maps.

Each *virtual subject* is the template seen through a smooth random deformation (head size,
rotation, local warps), with its own contrast, bias field and noise. Axial slices are cut from
it, skull-stripped with the template's brain mask, and written in the OASIS slice layout with
tissue masks (0 background, 85 CSF, 170 grey matter, 255 white matter). Subjects, not slices,
are split into train / validate / test. The same spec always gives the same files.

This is not patient data: every virtual subject shares one average anatomy, so the set is
much more homogeneous than OASIS. Use it to learn the method; use OASIS (``OASIS_DIR``) or your
own slices for real results.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from .utils import data_dir

BUILDER_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class DefaultDataSpec:
    n_subjects: int = 100              # virtual subjects, split by subject
    split_subjects: tuple = (80, 10, 10)  # train / validate / test
    slices_per_subject: int = 36       # axial slices, k = 0 (lowest) .. n-1 (highest)
    z_range_mm: tuple = (-30.0, 60.0)  # slice positions, MNI z coordinates (mm)
    size: int = 160                    # output slices are size x size pixels ...
    pixel_mm: float = 1.25             # ... of this many mm (a 200 mm field of view)
    centre_mm: tuple = (0.0, -18.0)    # MNI (x, y) at the image centre: the middle of the brain
    max_warp_mm: float = 3.0           # smooth local deformation amplitude
    seed: int = 0

    def __post_init__(self):
        if sum(self.split_subjects) != self.n_subjects or min(self.split_subjects) < 1:
            raise ValueError(f"DefaultDataSpec.split_subjects {self.split_subjects} must be positive "
                             f"and add up to n_subjects={self.n_subjects}")


def default_root() -> Path:
    return data_dir() / "mni152"


def _load_template() -> tuple[torch.Tensor, np.ndarray]:
    """(4, D, H, W) float32 volume stack [T1, grey, white, brain mask] in (z, y, x) order, and the affine."""
    from nilearn import datasets

    images = [datasets.load_mni152_template(resolution=1), datasets.load_mni152_gm_template(resolution=1),
              datasets.load_mni152_wm_template(resolution=1), datasets.load_mni152_brain_mask(resolution=1)]
    volumes = [np.asarray(img.get_fdata(), dtype=np.float32).transpose(2, 1, 0) for img in images]
    return torch.from_numpy(np.stack(volumes)), images[0].affine


def _subject_params(rng: np.random.Generator) -> dict:
    return {
        "scale": rng.uniform(0.92, 1.08, size=3),      # head size, per axis (x, y, z)
        "angle": math.radians(rng.uniform(-7, 7)),     # in-plane rotation
        "shift": rng.uniform(-3, 3, size=3),           # mm
        "z_jitter": rng.uniform(-1.5, 1.5),            # mm
        "gamma": rng.uniform(0.8, 1.25),               # contrast
        "gain": rng.uniform(0.9, 1.1),
        "noise": rng.uniform(0.005, 0.025),
    }


def _sampling_grid(spec: DefaultDataSpec, params: dict, warp: torch.Tensor, affine: np.ndarray,
                   shape: tuple) -> torch.Tensor:
    """Voxel grid (n, size, size, 3) in grid_sample's normalised (x, y, z) coordinates."""
    n, s = spec.slices_per_subject, spec.size
    z = torch.linspace(*spec.z_range_mm, n) + params["z_jitter"]
    half = (s - 1) / 2 * spec.pixel_mm
    y = torch.linspace(half, -half, s)  # top row = anterior
    x = torch.linspace(-half, half, s)
    zz, yy, xx = torch.meshgrid(z, y, x, indexing="ij")
    out = torch.stack([xx, yy, zz], dim=-1)           # (n, s, s, 3) mm around the image centre
    cos, sin = math.cos(params["angle"]), math.sin(params["angle"])
    rotate = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]) * params["scale"][:, None]
    d, h, w = shape
    to_unit = np.diag(2 / np.array([w - 1, h - 1, d - 1]))
    inv = np.linalg.inv(affine)
    linear = to_unit @ inv[:3, :3]                    # mm -> grid_sample's [-1, 1] (x, y, z)
    centre = np.array([*spec.centre_mm, 0.0]) + params["shift"]
    offset = linear @ centre + to_unit @ inv[:3, 3] - 1
    matrix = torch.from_numpy(linear @ rotate).float()
    return (out @ matrix.T + warp @ torch.from_numpy(linear).float().T) + torch.from_numpy(offset).float()


def _smooth_field(rng: np.random.Generator, channels: int, shape: tuple, amplitude: float) -> torch.Tensor:
    """A smooth random field (channels, *shape): coarse Gaussian noise, trilinearly upsampled."""
    coarse = torch.from_numpy(rng.normal(0, amplitude, size=(1, channels, 4, 5, 5)).astype(np.float32))
    return F.interpolate(coarse, size=shape, mode="trilinear", align_corners=True)[0]


def render_subject(template: torch.Tensor, affine: np.ndarray, spec: DefaultDataSpec,
                   subject: int) -> tuple[np.ndarray, np.ndarray]:
    """One virtual subject's slices: (n, size, size) uint8 images and uint8 masks (0/85/170/255)."""
    rng = np.random.default_rng([spec.seed, subject])
    params = _subject_params(rng)
    n, s = spec.slices_per_subject, spec.size
    warp = _smooth_field(rng, 3, (n, s, s), spec.max_warp_mm / 2).permute(1, 2, 3, 0)
    grid = _sampling_grid(spec, params, warp, affine, tuple(template.shape[1:]))
    sampled = F.grid_sample(template[None], grid[None], mode="bilinear", padding_mode="zeros",
                            align_corners=True)[0]    # (4, n, s, s)
    t1, grey, white, brain = sampled
    inside = brain > 0.5
    bias = torch.exp(_smooth_field(rng, 1, (n, s, s), 0.08)[0])
    noise = torch.from_numpy(rng.normal(0, params["noise"], size=(n, s, s)).astype(np.float32))
    image = (t1.clamp(0, 1) ** params["gamma"]) * params["gain"] * bias + noise
    image = torch.where(inside, image.clamp(0, 1), torch.zeros(()))
    csf = (1 - grey - white).clamp(min=0)
    tissue = torch.where((white >= grey) & (white >= csf), 3, torch.where(grey >= csf, 2, 1))
    mask = torch.where(inside, tissue, torch.zeros((), dtype=torch.long)) * 85
    return (image * 255 + 0.5).to(torch.uint8).numpy(), mask.to(torch.uint8).numpy()


def _split_of(subject: int, spec: DefaultDataSpec) -> str:
    order = np.random.default_rng(spec.seed).permutation(spec.n_subjects)
    rank = int(np.nonzero(order == subject)[0][0])
    n_train, n_val, _ = spec.split_subjects
    return "train" if rank < n_train else "validate" if rank < n_train + n_val else "test"


def _write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, compress_level=1)


def build_default_dataset(root: str | Path | None = None, spec: DefaultDataSpec = DefaultDataSpec(),
                          progress: bool = True) -> Path:
    """Write the virtual-subject set in the OASIS slice layout under ``root`` (atomically: a
    temporary folder is renamed into place once complete)."""
    root = Path(root) if root is not None else default_root()
    root.parent.mkdir(parents=True, exist_ok=True)
    template, affine = _load_template()
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        for split in ("train", "validate", "test"):
            (tmp / f"keras_png_slices_{split}").mkdir()
            (tmp / f"keras_png_slices_seg_{split}").mkdir()
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = []
            for subject in tqdm(range(spec.n_subjects), desc="building MNI152 virtual subjects",
                                disable=not progress):
                images, masks = render_subject(template, affine, spec, subject)
                split, sid = _split_of(subject, spec), f"{subject:03d}"
                for k in range(spec.slices_per_subject):
                    name = f"{sid}_slice_{k}.nii.png"
                    image_path = tmp / f"keras_png_slices_{split}" / f"case_{name}"
                    mask_path = tmp / f"keras_png_slices_seg_{split}" / f"seg_{name}"
                    jobs.append(pool.submit(_write_png, image_path, images[k]))
                    jobs.append(pool.submit(_write_png, mask_path, masks[k]))
            for job in jobs:
                job.result()
        (tmp / MANIFEST).write_text(json.dumps(_manifest(spec), indent=1))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _manifest(spec: DefaultDataSpec) -> dict:
    return {"builder_version": BUILDER_VERSION, "spec": asdict(spec),
            "source": "MNI152 2009 T1 template and tissue maps bundled with nilearn"}


def is_built(root: Path, spec: DefaultDataSpec = DefaultDataSpec()) -> bool:
    manifest = root / MANIFEST
    if not manifest.is_file():
        return False
    return json.loads(manifest.read_text()) == json.loads(json.dumps(_manifest(spec)))


def ensure_default_dataset(root: str | Path | None = None, spec: DefaultDataSpec = DefaultDataSpec()) -> Path:
    """The built-in set's folder, built first if missing, incomplete or made with another spec."""
    root = Path(root) if root is not None else default_root()
    if not is_built(root, spec):
        build_default_dataset(root, spec)
    return root
