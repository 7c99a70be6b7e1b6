"""Brain slices from any source, decoded once into memory.

One entry point, :func:`load_dataset`, reads four kinds of source:

1. the OASIS preprocessed slice layout (``keras_png_slices_{train,validate,test}`` with
   ``keras_png_slices_seg_*`` tissue masks): subject and slice index come from the names;
2. an ImageFolder tree (``root/<class>/<image>``): class folders become labels;
3. a plain folder of images;
4. ``"default"``: ``$OASIS_DIR`` when set, else ``data/oasis/`` when it exists, else the
   built-in MNI152 virtual-subject set (:mod:`vqvae_lib.mni152`), built on first use.

Every slice is made grayscale, zero-padded to a centred square, resized with antialiasing
to ``image_size`` and kept as uint8 (values / 255 give [0, 1]). Decoded slices are cached
on disk, keyed by a fingerprint of the file names, sizes and contents (not their modification
times: rebuilding identical files keeps the fingerprint), the size and how the split was made.

Splits: the OASIS layout (and the built-in set) is split by subject into its own folders. Sources
without splits of their own get three seeded parts, 80 / 10 / 10 % train / validate / test:
``validate`` for curves and model selection, ``test`` for the reported score. The parts are drawn
by file, or by group when ``group_by`` (a regex on each file's name relative to the root) says which
files belong together (e.g. the slices of one subject): then all files of a group land in one part.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .cache import CACHE_VERSION, cache_file, read_cache, write_cache
from .utils import data_dir, display_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
OASIS_SPLITS = ("train", "validate", "test")
TISSUE_NAMES = ("background", "CSF", "grey matter", "white matter")  # mask values 0/85/170/255
SPLIT_PARTS = ("train", "validate", "test")  # the parts of a source without splits of its own ...
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)             # ... and their shares (of files, or of groups)
_OASIS_IMAGE = re.compile(r"^case_(?P<subject>.+)_slice_(?P<slice>\d+)\.nii\.png$")
_OASIS_MASK = re.compile(r"^seg_(?P<subject>.+)_slice_(?P<slice>\d+)\.nii\.png$")
LAYOUT_HELP = (
    "expected one of: the OASIS slice layout (folders keras_png_slices_train/validate/test holding "
    "case_<subject>_slice_<k>.nii.png), an ImageFolder tree (<root>/<class>/<image>.png|.jpg), "
    "or a plain folder of .png/.jpg images"
)


@dataclass
class SliceDataset(Dataset):
    """Slices of one split, all in memory. ``dataset[i]`` is a dict with ``image`` (1, S, S)
    float in [0, 1] and, when the source has them, ``mask`` (S, S) tissue classes 0..3,
    ``label`` (class index) and ``slice_index``."""

    images: torch.Tensor                 # (N, 1, S, S) uint8
    paths: list[str]
    source: str
    layout: str                          # "oasis" | "imagefolder" | "folder"
    split: str
    fingerprint: str                     # identifies file names + contents, size, split: checkpoints record it
    split_kind: str = "by file"          # "by subject" (OASIS layout) | "by file" | "by group (REGEX)"
    masks: torch.Tensor | None = None    # (N, S, S) uint8 tissue class 0..3
    labels: torch.Tensor | None = None   # (N,) long, ImageFolder class index
    class_names: list[str] = field(default_factory=list)
    subjects: list[str] | None = None    # OASIS layout: subject id per slice
    slice_index: torch.Tensor | None = None  # (N,) long, OASIS layout: k in ..._slice_<k>

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict:
        item = {"image": self.images[i].float() / 255.0}
        if self.masks is not None:
            item["mask"] = self.masks[i].long()
        if self.labels is not None:
            item["label"] = self.labels[i]
        if self.slice_index is not None:
            item["slice_index"] = self.slice_index[i]
        return item

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def float_images(self, index=None) -> torch.Tensor:
        """Images as float in [0, 1], (N, 1, S, S); ``index`` selects a subset."""
        images = self.images if index is None else self.images[index]
        return images.float() / 255.0

    def __repr__(self) -> str:
        extras = [name for name in ("masks", "labels", "slice_index") if getattr(self, name) is not None]
        return (f"SliceDataset({len(self)} slices, {self.image_size}x{self.image_size}, layout={self.layout}, "
                f"split={self.split} ({self.split_kind}), with={extras}, source={display_path(self.source)})")


# ----------------------------------------------------------------------------- transforms

def pad_to_square(image: Image.Image) -> Image.Image:
    """Zero-pad a slice to a centred square (the brain keeps its aspect ratio)."""
    w, h = image.size
    side = max(w, h)
    if w == h:
        return image
    canvas = Image.new(image.mode, (side, side), 0)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def to_grayscale(image: Image.Image) -> Image.Image:
    """8-bit grayscale; 16-bit images are scaled down, colour images converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(array.max(), 1.0)
        return Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return image if image.mode == "L" else image.convert("L")


def prepare_slice(image: Image.Image, image_size: int, is_mask: bool = False) -> np.ndarray:
    """Grayscale, pad to square, resize (antialiased for images, nearest for masks) -> uint8 array."""
    image = pad_to_square(to_grayscale(image))
    resample = Image.Resampling.NEAREST if is_mask else Image.Resampling.BILINEAR
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), resample=resample)
    return np.asarray(image, dtype=np.uint8)


def mask_to_classes(mask: np.ndarray) -> np.ndarray:
    """OASIS mask values 0/85/170/255 -> tissue classes 0..3."""
    return np.clip(np.rint(mask.astype(np.float32) / 85.0), 0, 3).astype(np.uint8)


# ----------------------------------------------------------------------------- sources

def resolve_source(source: str | os.PathLike) -> Path:
    """``"default"`` -> $OASIS_DIR, data/oasis or the built-in MNI152 set; ``"mni152"`` -> the
    built-in set (built on first use); anything else must be an existing folder."""
    if str(source) == "default":
        env = os.environ.get("OASIS_DIR")
        if env:
            return _existing_folder(Path(env).expanduser(), "OASIS_DIR")
        if (data_dir() / "oasis").is_dir():
            return data_dir() / "oasis"
        source = "mni152"
    if str(source) == "mni152":
        from .mni152 import ensure_default_dataset

        return ensure_default_dataset()
    return _existing_folder(Path(source).expanduser(), "source")


def _existing_folder(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} folder {path} does not exist ({LAYOUT_HELP})")
    if not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file, not a folder ({LAYOUT_HELP})")
    return path.resolve()


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def detect_layout(root: Path) -> str:
    """``"oasis"``, ``"imagefolder"`` or ``"folder"``; a clear error for anything else."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise ValueError(f"folder {root} is empty: {LAYOUT_HELP}")
    if any(p.is_dir() and p.name.startswith("keras_png_slices_") for p in entries):
        return "oasis"
    class_dirs = [p for p in entries if p.is_dir() and _images_in(p)]
    loose = _images_in(root)
    if class_dirs and loose:
        raise ValueError(f"folder {root} mixes images ({loose[0].name}, ...) with class folders "
                         f"({class_dirs[0].name}/, ...): put every image in a class folder")
    if class_dirs:
        return "imagefolder"
    if loose:
        return "folder"
    raise ValueError(f"folder {root} is in no known layout: {LAYOUT_HELP}")


def available_splits(source: str | os.PathLike) -> tuple[str, ...]:
    """Split names :func:`load_dataset` accepts for this source."""
    root = resolve_source(source)
    if detect_layout(root) == "oasis":
        return tuple(s for s in OASIS_SPLITS if (root / f"keras_png_slices_{s}").is_dir()) + ("all",)
    return SPLIT_PARTS + ("all",)


def default_eval_split(source: str | os.PathLike) -> str:
    """The held-out split scores are reported on: ``test`` (every source has one, except an OASIS-layout
    root without a ``keras_png_slices_test`` folder: then ``validate``)."""
    return "test" if "test" in available_splits(source) else "validate"


@dataclass
class _Listing:
    images: list[Path]
    masks: list[Path] | None = None
    labels: list[int] | None = None
    class_names: list[str] = field(default_factory=list)
    subjects: list[str] | None = None
    slice_index: list[int] | None = None


def _list_oasis(root: Path, split: str) -> _Listing:
    splits = OASIS_SPLITS if split == "all" else (split,)
    if split not in OASIS_SPLITS + ("all",):
        raise ValueError(f"split must be one of {OASIS_SPLITS + ('all',)} for the OASIS layout "
                         f"at {root}, got {split!r}")
    parts = [_list_oasis_split(root, s, required=split != "all") for s in splits]
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError(f"{root} holds no keras_png_slices_<split> folder with images")
    with_masks = all(p.masks is not None for p in parts)
    return _Listing(
        images=[x for p in parts for x in p.images],
        masks=[x for p in parts for x in p.masks] if with_masks else None,
        subjects=[x for p in parts for x in p.subjects],
        slice_index=[x for p in parts for x in p.slice_index],
    )


def _list_oasis_split(root: Path, split: str, required: bool) -> _Listing | None:
    folder = root / f"keras_png_slices_{split}"
    if not folder.is_dir():
        if required:
            raise ValueError(f"OASIS layout at {root} has no split {split!r}: expected folder {folder}")
        return None
    images = _images_in(folder)
    if not images:
        raise ValueError(f"folder {folder} holds no images (expected case_<subject>_slice_<k>.nii.png)")
    subjects, slices = [], []
    for path in images:
        match = _OASIS_IMAGE.match(path.name)
        if match is None:
            raise ValueError(f"file {path} does not follow the OASIS naming "
                             "case_<subject>_slice_<k>.nii.png")
        subjects.append(match["subject"])
        slices.append(int(match["slice"]))
    return _Listing(images=images, masks=_pair_masks(root, split, images), subjects=subjects,
                    slice_index=slices)


def _pair_masks(root: Path, split: str, images: list[Path]) -> list[Path] | None:
    folder = root / f"keras_png_slices_seg_{split}"
    if not folder.is_dir():
        return None
    by_name = {p.name: p for p in _images_in(folder)}
    expected = {"seg_" + p.name[len("case_"):]: p for p in images}
    for name, mask in by_name.items():
        if _OASIS_MASK.match(name) is None:
            raise ValueError(f"file {mask} does not follow the OASIS mask naming seg_<subject>_slice_<k>.nii.png")
        if name not in expected:
            raise ValueError(f"mask {mask} has no image: expected "
                             f"{root / f'keras_png_slices_{split}' / ('case_' + name[len('seg_'):])}")
    missing = [img for name, img in expected.items() if name not in by_name]
    if missing:
        raise ValueError(f"image {missing[0]} has no mask: expected {folder / ('seg_' + missing[0].name[5:])} "
                         f"({len(missing)} images without masks in {folder})")
    return [by_name[name] for name in expected]


def _list_imagefolder(root: Path) -> _Listing:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    images, labels, names = [], [], []
    for folder in class_dirs:
        files = _images_in(folder)
        if not files:
            raise ValueError(f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        labels += [len(names)] * len(files)
        names.append(folder.name)
        images += files
    return _Listing(images=images, labels=labels, class_names=names)


def part_sizes(n: int, what: str = "files") -> tuple[int, int, int]:
    """How many of ``n`` files (or groups) go to train / validate / test: :data:`SPLIT_FRACTIONS`, rounded,
    at least one each (so ``n`` must be at least 3)."""
    if n < 3:
        raise ValueError(f"a source without splits of its own is split into {', '.join(SPLIT_PARTS)}: that needs "
                         f"at least 3 {what}, got {n} (add data, or load split='all')")
    n_validate, n_test = (max(1, round(n * share)) for share in SPLIT_FRACTIONS[1:])
    return n - n_validate - n_test, n_validate, n_test


def held_out_split(n: int, split: str, seed: int = 0, groups: list[str] | None = None) -> list[int]:
    """Indices (sorted) of ``split`` among ``n`` files, for sources without splits of their own: a seeded
    80 / 10 / 10 split into train / validate / test, by file, or by group when ``groups`` gives each
    file's group (the groups are shuffled and shared out, so all files of a group land in one part)."""
    if split == "all":
        return list(range(n))
    if split not in SPLIT_PARTS:
        raise ValueError(f"split must be one of {SPLIT_PARTS + ('all',)} for a source without its own "
                         f"splits, got {split!r}")
    if groups is not None and len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} files")
    keys = list(range(n)) if groups is None else sorted(set(groups))
    _, n_validate, n_test = part_sizes(len(keys), "files" if groups is None else "groups")
    order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(seed)).tolist()
    held = n_validate + n_test  # held-out first: by file, train is the former 80/20 split's train part
    start, stop = {"validate": (0, n_validate), "test": (n_validate, held), "train": (held, len(keys))}[split]
    chosen = {keys[i] for i in order[start:stop]}
    return [i for i in range(n) if (i if groups is None else groups[i]) in chosen]


def spread_subset(n: int, limit: int | None, groups=None, seed: int = 0) -> torch.Tensor:
    """Indices (sorted, (m,) long) of ``limit`` of ``n`` items, drawn with a seeded generator and stratified by
    ``groups`` (one key per item: a subject, a class, a depth band): each group gets the share of the ``limit`` that
    it has of the items (largest remainder), so that a capped validation set holds every group in proportion
    instead of the first groups in file order. All of them when ``limit`` is None or at least ``n``."""
    if limit is None or limit >= n:
        return torch.arange(n)
    if limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    if groups is None:
        return torch.tensor(sorted(order[:limit]))
    keys = groups.tolist() if isinstance(groups, torch.Tensor) else list(groups)
    if len(keys) != n:
        raise ValueError(f"groups has {len(keys)} entries for {n} items")
    members: dict = {}                                # each group's items, in the seeded draw order
    for i in order:
        members.setdefault(keys[i], []).append(i)
    share = {g: limit * len(m) / n for g, m in members.items()}
    quota = {g: int(s) for g, s in share.items()}
    by_remainder = sorted(members, key=lambda g: share[g] - quota[g], reverse=True)
    for g in by_remainder[:limit - sum(quota.values())]:
        quota[g] += 1
    return torch.tensor(sorted(i for g, m in members.items() for i in m[:quota[g]]))


def item_groups(dataset: SliceDataset):
    """What a subset of ``dataset`` should be spread over: its subjects, else its class labels, else None."""
    return dataset.subjects if dataset.subjects is not None else dataset.labels


def spread_images(dataset: SliceDataset, limit: int | None) -> torch.Tensor:
    """At most ``limit`` of the dataset's images (N, 1, S, S) uint8, a seeded draw stratified by ``item_groups``."""
    return dataset.images[spread_subset(len(dataset.images), limit, item_groups(dataset))]


def file_groups(paths: list[Path], root: Path, group_by: str) -> list[str]:
    """The group of each file: the regex ``group_by`` searched in the file's name relative to ``root``
    (``/``-separated, e.g. ``NonDemented/subj12_slice3.png``); its named group ``group`` if it has one,
    else its first capture group. A file it gives no group is an error."""
    try:
        pattern = re.compile(group_by)
    except re.error as error:
        raise ValueError(f"group_by {group_by!r} is not a valid regular expression: {error}") from None
    if pattern.groups == 0:
        raise ValueError(f"group_by {group_by!r} has no capture group: put the part of the file name that "
                         r"names the group in parentheses, e.g. '(\w+)_slice_\d+'")
    key = "group" if "group" in pattern.groupindex else 1
    groups = []
    for path in paths:
        name = path.relative_to(root).as_posix()
        match = pattern.search(name)
        if match is None or not match[key]:
            raise ValueError(f"file {path} gives no group: group_by {group_by!r} does not match its name "
                             f"{name!r} (relative to {root}) with a non-empty group")
        groups.append(match[key])
    return groups


def _list_split(root: Path, layout: str, split: str, seed: int, group_by: str | None) -> tuple[_Listing, str]:
    """The files of ``split`` and how the split was made (``SliceDataset.split_kind``)."""
    if layout == "oasis":
        if group_by is not None:
            raise ValueError(f"group_by applies to sources without splits of their own; the OASIS layout at "
                             f"{root} is already split by subject (got group_by={group_by!r})")
        return _list_oasis(root, split), "by subject"
    listing = _list_imagefolder(root) if layout == "imagefolder" else _Listing(images=_images_in(root))
    groups = None if group_by is None else file_groups(listing.images, root, group_by)
    kind = "by file" if group_by is None else f"by group ({group_by})"
    return _subset(listing, held_out_split(len(listing.images), split, seed, groups)), kind


def _subset(listing: _Listing, keep: list[int]) -> _Listing:
    pick = lambda values: None if values is None else [values[i] for i in keep]  # noqa: E731
    return _Listing(images=pick(listing.images), masks=pick(listing.masks), labels=pick(listing.labels),
                    class_names=listing.class_names, subjects=pick(listing.subjects),
                    slice_index=pick(listing.slice_index))


# ----------------------------------------------------------------------------- decoding and cache

def _file_digest(path: Path) -> str:
    """Size and SHA-256 of one file's bytes."""
    content = path.read_bytes()
    return f"{len(content)}|{hashlib.sha256(content).hexdigest()}"


def _fingerprint(listing: _Listing, root: Path, image_size: int, split_kind: str) -> str:
    """Identifies what a load gives: each file's name relative to ``root``, size and content (not its
    modification time: rebuilding identical files keeps it), labels, ``image_size`` and ``split_kind``."""
    paths = listing.images + (listing.masks or [])
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # hashlib releases the GIL
        digests = list(pool.map(_file_digest, paths))
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{image_size}|{split_kind}".encode())
    for path, file_digest in zip(paths, digests):
        digest.update(f"|{path.relative_to(root).as_posix()}|{file_digest}".encode())
    digest.update(f"|{listing.labels}|{listing.class_names}".encode())
    return digest.hexdigest()[:16]


def _decode(path: Path, image_size: int, is_mask: bool) -> np.ndarray | str:
    try:
        with Image.open(path) as image:
            image.load()
            array = prepare_slice(image, image_size, is_mask)
    except (OSError, ValueError, SyntaxError) as error:
        return f"{type(error).__name__}: {error}"
    return mask_to_classes(array) if is_mask else array


def _decode_all(paths: list[Path], image_size: int, is_mask: bool, desc: str) -> list:
    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda p: _decode(p, image_size, is_mask), paths)
        return list(tqdm(results, total=len(paths), desc=desc, leave=False, disable=len(paths) < 200))


def _decode_listing(listing: _Listing, image_size: int, root: Path) -> tuple[dict, list[int]]:
    images = _decode_all(listing.images, image_size, False, f"decoding {root.name}")
    masks = _decode_all(listing.masks, image_size, True, "decoding masks") if listing.masks else None
    bad = [i for i, img in enumerate(images) if isinstance(img, str)]
    if masks is not None:
        bad = sorted(set(bad) | {i for i, m in enumerate(masks) if isinstance(m, str)})
    if bad and len(bad) == len(images):
        raise ValueError(f"none of the {len(images)} images under {root} could be read; "
                         f"first: {listing.images[0]} ({images[0]})")
    if bad:
        first = bad[0]
        reason = images[first] if isinstance(images[first], str) else masks[first]
        warnings.warn(f"skipped {len(bad)} unreadable or corrupt image(s) under {root}; first: "
                      f"{listing.images[first]} ({reason})", stacklevel=3)
    skipped = set(bad)
    keep = [i for i in range(len(images)) if i not in skipped]
    arrays = {"images": torch.from_numpy(np.stack([images[i] for i in keep]))[:, None]}
    if masks is not None:
        arrays["masks"] = torch.from_numpy(np.stack([masks[i] for i in keep]))
    return arrays, keep


def _cache_path(cache_dir: Path, fingerprint: str) -> Path:
    return cache_file(cache_dir, f"slices-{fingerprint}")


def _load_or_decode(listing: _Listing, root: Path, image_size: int, cache_dir: Path | None, split_kind: str):
    fingerprint = _fingerprint(listing, root, image_size, split_kind)
    path = _cache_path(cache_dir, fingerprint) if cache_dir is not None else None
    cached = read_cache(path) if path is not None else None
    if cached is not None and {"arrays", "keep"} <= set(cached):
        return cached["arrays"], cached["keep"], fingerprint
    arrays, keep = _decode_listing(listing, image_size, root)
    if path is not None:
        write_cache({"arrays": arrays, "keep": keep}, path)
    return arrays, keep, fingerprint


def load_dataset(source: str | os.PathLike = "default", split: str = "train", image_size: int = 128, *,
                 seed: int = 0, group_by: str | None = None, cache: bool = True,
                 cache_dir: str | os.PathLike | None = None) -> SliceDataset:
    """Load one split of a slice source into memory (see module docstring for the sources).

    ``split`` is ``train``, ``validate``, ``test`` or ``all``. The OASIS layout has its own by-subject
    splits; other sources get a seeded 80 / 10 / 10 split (``seed``) by file, or by group with
    ``group_by``: a regex whose named group ``group`` (else its first group), searched in each file's
    name relative to the root, says which files belong together (see :func:`file_groups`).
    """
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")
    root = resolve_source(source)
    layout = detect_layout(root)
    listing, split_kind = _list_split(root, layout, split, seed, group_by)
    cache_folder = None if not cache else Path(cache_dir) if cache_dir is not None else data_dir() / "cache"
    arrays, keep, fingerprint = _load_or_decode(listing, root, image_size, cache_folder, split_kind)
    listing = _subset(listing, keep)
    return SliceDataset(
        images=arrays["images"], masks=arrays.get("masks"), paths=[str(p) for p in listing.images],
        source=str(root), layout=layout, split=split, fingerprint=fingerprint, split_kind=split_kind,
        labels=None if listing.labels is None else torch.tensor(listing.labels, dtype=torch.long),
        class_names=listing.class_names, subjects=listing.subjects,
        slice_index=None if listing.slice_index is None else torch.tensor(listing.slice_index, dtype=torch.long),
    )
