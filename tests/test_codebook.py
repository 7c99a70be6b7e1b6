"""Codebook statistics, patches, neighbours, projection and code-map edits (vqvae_lib.codebook)."""
import math
from types import SimpleNamespace

import pytest
import torch

from vqvae_lib import codebook as cb
from vqvae_lib import pipeline
from vqvae_lib.config import VQVAEConfig, get_profile
from vqvae_lib.data import SliceDataset
from vqvae_lib.metrics import perplexity as metrics_perplexity
from vqvae_lib.quantizer import flatten
from vqvae_lib.vqvae import VQVAE


def tiny_model(seed=0, **changes) -> VQVAE:
    """A tiny VQ-VAE in eval mode whose codes are sampled encoder outputs, so that many are in use."""
    torch.manual_seed(seed)
    cfg = dict(hidden_channels=16, res_channels=8, n_res_blocks=1, codebook_size=16, embedding_dim=8)
    model = VQVAE(VQVAEConfig(**{**cfg, **changes})).eval()
    with torch.no_grad():
        z = flatten(model.encode(torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(seed))))
        model.quantizer.init_codebook(z)
    return model


def uint8_images(n=6, size=32, seed=0):
    return torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


# ----------------------------------------------------------------------------- statistics

def hand_made_maps():
    # image 0 uses codes 0 and 1 twice each, image 1 uses code 3 four times: p = (1/4, 1/4, 0, 1/2, 0)
    return torch.tensor([[[0, 0], [1, 1]], [[3, 3], [3, 3]]])


def test_stats_of_hand_made_maps():
    stats = cb.stats_from_indices(hand_made_maps(), codebook_size=5)
    assert stats.counts.tolist() == [2, 2, 0, 4, 0]
    assert stats.entropy_bits == pytest.approx(1.5)  # 1/4*2 + 1/4*2 + 1/2*1
    assert stats.perplexity == pytest.approx(2 ** 1.5)
    assert stats.perplexity == pytest.approx(metrics_perplexity(stats.counts))  # exp(entropy in nats)
    assert stats.active == 3 and stats.dead.tolist() == [2, 4]
    assert stats.by_group is None and stats.usage.sum() == pytest.approx(1.0)
    assert stats.summary()["max_entropy_bits"] == pytest.approx(math.log2(5))


def test_stats_extremes_uniform_and_single_code():
    uniform = cb.stats_from_indices(torch.arange(16).view(1, 4, 4), 16)
    assert uniform.perplexity == pytest.approx(16) and uniform.entropy_bits == pytest.approx(4.0)
    assert uniform.dead.numel() == 0 and uniform.active == 16
    single = cb.stats_from_indices(torch.full((3, 2, 2), 7), 8)
    assert single.perplexity == 1.0 and single.entropy_bits == 0.0 and str(single.entropy_bits) == "0.0"
    assert single.dead.tolist() == [0, 1, 2, 3, 4, 5, 6] and single.active == 1


def test_stats_by_group():
    maps = hand_made_maps()
    by_value = cb.stats_from_indices(maps, 5, groups=torch.tensor([7, 3]))  # rows in sorted order: 3, 7
    assert by_value.group_names == ["3", "7"]
    assert by_value.by_group.tolist() == [[0, 0, 0, 4, 0], [2, 2, 0, 0, 0]]
    named = cb.stats_from_indices(maps, 5, groups=[1, 1], group_names=["a", "b", "c"], group_by="class")
    assert named.group_names == ["a", "b", "c"] and named.group_by == "class"
    assert named.by_group.tolist() == [[0] * 5, [2, 2, 0, 4, 0], [0] * 5]  # empty groups keep their row
    by_string = cb.stats_from_indices(maps, 5, groups=["s2", "s1"])
    assert by_string.group_names == ["s1", "s2"] and by_string.by_group[0, 3] == 4


def test_stats_reject_bad_input():
    with pytest.raises(ValueError, match="code indices"):
        cb.stats_from_indices(hand_made_maps(), codebook_size=3)
    with pytest.raises(ValueError, match="2 code maps"):
        cb.stats_from_indices(hand_made_maps(), 5, groups=[0, 1, 2])
    with pytest.raises(ValueError, match="group_names"):
        cb.stats_from_indices(hand_made_maps(), 5, groups=[0, 2], group_names=["a", "b"])


def dataset(images, **kwargs) -> SliceDataset:
    return SliceDataset(images=images, paths=[""] * len(images), source="t", layout="oasis", split="train",
                        fingerprint="f", **kwargs)


def test_codebook_stats_groups_by_depth_or_class():
    model, images = tiny_model(), uint8_images(6)
    per_image = 8 * 8
    depth = cb.codebook_stats(model, dataset(images, subjects=list("aabbcc"),
                                             slice_index=torch.tensor([0, 1, 0, 1, 0, 1])), batch_size=4)
    assert depth.group_by == "slice index" and depth.group_names == ["0", "1"]
    assert depth.by_group.sum(1).tolist() == [3 * per_image, 3 * per_image]
    assert torch.equal(depth.by_group.sum(0), depth.counts) and depth.counts.sum() == 6 * per_image
    classes = cb.codebook_stats(model, dataset(images, labels=torch.tensor([0, 0, 0, 0, 2, 2]),
                                               class_names=["x", "y", "z"]))
    assert classes.group_by == "class" and classes.group_names == ["x", "y", "z"]
    assert classes.by_group.sum(1).tolist() == [4 * per_image, 0, 2 * per_image]
    plain = cb.codebook_stats(model, images)
    assert plain.by_group is None and torch.equal(plain.counts, depth.counts)
    assert cb.codebook_stats(model, dataset(images, slice_index=torch.zeros(6)), groups=None).by_group is None


# ----------------------------------------------------------------------------- encoding

def test_encode_split_matches_the_model_and_restores_mode():
    model, images = tiny_model(), uint8_images(5)
    model.train()
    encoded = cb.encode_with_distances(model, images, batch_size=2)
    assert model.training
    model.eval()
    x = images.float() / 255.0
    assert encoded.indices.dtype == torch.long and encoded.indices.shape == (5, 8, 8)
    assert torch.equal(encoded.indices, model.encode_indices(x))
    assert torch.equal(cb.encode_split(model, x), encoded.indices)  # float input in [0, 1] too
    with torch.no_grad():
        z = flatten(model.encode(x))
        expected = ((z[:, None] - model.quantizer.codebook[None]) ** 2).sum(-1).min(1).values
    assert torch.allclose(encoded.distances.flatten(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="no images"):
        cb.encode_split(model, images[:0])


# ----------------------------------------------------------------------------- patches, neighbours, projection

def position_images(n=2, size=16):
    """Images whose pixel value is its position row * size + col (float, exact)."""
    grid = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size)
    return grid.repeat(n, 1, 1, 1) + 1000 * torch.arange(n).view(n, 1, 1, 1)  # image n adds 1000 n


def test_code_patches_cover_the_right_pixels_and_clip_at_borders():
    ds, margin, size = 4, 2, 16
    indices = torch.zeros(2, 4, 4, dtype=torch.long)
    for n, r, c in [(0, 0, 0), (1, 2, 1), (0, 3, 3)]:
        indices[n, r, c] = 5
    patches = cb.code_patches(indices, position_images(), code=5, downsample=ds, margin=margin)
    expected = {(0, 0, 0): (0, 6, 0, 6), (1, 2, 1): (6, 14, 2, 10), (0, 3, 3): (10, 16, 10, 16)}
    assert sorted((p.image, p.row, p.col) for p in patches) == sorted(expected)
    for p in patches:
        top, bottom, left, right = expected[(p.image, p.row, p.col)]
        assert (top, bottom, left, right) == cb.patch_box(p.row, p.col, ds, margin, (size, size))
        assert p.patch.shape == (bottom - top, right - left)
        assert p.patch[0, 0] == 1000 * p.image + top * size + left  # its upper-left pixel
        assert p.patch[-1, -1] == 1000 * p.image + (bottom - 1) * size + (right - 1)
    zero_margin = cb.code_patches(indices, position_images(), 5, ds, margin=0)
    assert all(p.patch.shape == (ds, ds) for p in zero_margin)
    assert cb.code_patches(indices, position_images(), code=9, downsample=ds) == []


def test_code_patches_best_matches_first_and_sampled_evenly():
    indices = torch.full((1, 4, 4), 2)
    distances = torch.arange(16, 0, -1, dtype=torch.float32).view(1, 4, 4)  # the last cell matches best
    best = cb.code_patches(indices, position_images(1), 2, 4, margin=0, max_patches=3, distances=distances)
    assert [(p.row, p.col) for p in best] == [(3, 3), (3, 2), (3, 1)]
    spread = cb.code_patches(indices, position_images(1), 2, 4, margin=0, max_patches=4)
    assert [(p.row, p.col) for p in spread] == [(0, 0), (1, 1), (2, 2), (3, 3)]  # rows 0, 5, 10, 15


def test_nearest_codes_exclude_the_code_and_are_sorted():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [6.0, 0.0], [10.0, 0.0]])
    near = cb.nearest_codes(codebook, 1, k=3)
    assert near.indices.tolist() == [0, 2, 3]
    assert near.distances.tolist() == pytest.approx([1.0, 2.0, 5.0])
    assert cb.nearest_codes(codebook, 4, k=10).indices.tolist() == [3, 2, 1, 0]  # k capped at K - 1
    random = cb.nearest_codes(torch.randn(32, 8), 5, k=31)
    assert 5 not in random.indices.tolist() and torch.all(random.distances[1:] >= random.distances[:-1])


def test_pca_2d_shape_and_plane():
    g = torch.Generator().manual_seed(0)
    plane = torch.randn(50, 2, generator=g) @ torch.randn(2, 6, generator=g) + 3.0  # codes on a 2-D plane in 6-D
    projection = cb.pca_2d(plane)
    assert projection.points.shape == (50, 2) and projection.explained.shape == (2,)
    assert projection.explained.sum() == pytest.approx(1.0, abs=1e-5)
    def pairwise(x):
        return (x[:, None] - x[None]).norm(dim=-1)

    assert torch.allclose(pairwise(projection.points), pairwise(plane), atol=1e-4)  # nothing lost off the plane
    assert torch.equal(cb.pca_2d(plane).points, projection.points)
    perm = torch.randperm(50, generator=g)
    assert torch.allclose(cb.pca_2d(plane[perm]).points, projection.points[perm], atol=1e-4)  # signs fixed
    assert cb.pca_2d(torch.randn(10, 1)).points[:, 1].abs().max() == 0  # D = 1: second axis padded


# ----------------------------------------------------------------------------- edits

def test_replace_and_paint_return_new_maps():
    indices = torch.tensor([[1, 2, 1], [3, 1, 0], [2, 2, 2]])
    before = indices.clone()
    replaced = cb.replace_code(indices, 1, 9)
    assert replaced.tolist() == [[9, 2, 9], [3, 9, 0], [2, 2, 2]]
    painted = cb.paint_region(indices, (1, 3), (0, 2), 7)  # rows 1..2, cols 0..1
    assert painted.tolist() == [[1, 2, 1], [7, 7, 0], [7, 7, 2]]
    batch = cb.paint_region(indices.expand(2, 3, 3), (0, 1), (2, 3), 5)
    assert batch[:, 0, 2].tolist() == [5, 5]
    assert torch.equal(indices, before)


def test_decoder_footprint_of_the_architecture():
    model = tiny_model()  # decoder: 3x3 conv, one residual block (3x3), two 4x4 stride-2 transposed convs
    # latent reach 2 cells; each transposed conv maps latent rows [a, b] to [2a - 1, 2b + 2]
    for r, c in [(0, 0), (3, 5), (7, 7)]:
        assert cb.decoder_footprint(model, r, c) == (4 * r - 11, 4 * r + 15, 4 * c - 11, 4 * c + 15)
    deeper = tiny_model(n_res_blocks=2, downsample=8)  # 64x64 -> 8x8, reach 3 cells, three transposed convs
    assert cb.decoder_footprint(deeper, 4, 4) == (8 * 1 - 7, 8 * 7 + 15, 8 * 1 - 7, 8 * 7 + 15)


@pytest.mark.parametrize("position", [(1, 1), (6, 3)])
def test_code_edit_changes_only_the_decoder_footprint(position):
    model, image = tiny_model(), uint8_images(1)
    indices = cb.encode_split(model, image)[0]  # (8, 8)
    r, c = position
    edited = cb.paint_region(indices, (r, r + 1), (c, c + 1), (int(indices[r, c]) + 1) % 16)
    before, after = cb.decode_edit(model, torch.stack([indices, edited]))
    changed = (before != after)[0]  # (32, 32)
    top, bottom, left, right = cb.decoder_footprint(model, r, c)
    inside = torch.zeros_like(changed)
    inside[max(top, 0):bottom, max(left, 0):right] = True
    assert not changed[~inside].any()  # bit for bit unchanged outside the footprint
    assert changed[r * 4:(r + 1) * 4, c * 4:(c + 1) * 4].all()  # the code's own block changes
    rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
    # the measured reach is the footprint (clipped to the image), not smaller
    assert (int(rows.min()), int(rows.max()) + 1) == (max(top, 0), min(bottom, 32))
    assert (int(cols.min()), int(cols.max()) + 1) == (max(left, 0), min(right, 32))


def test_decode_edit_accepts_one_map_and_keeps_the_mode():
    model = tiny_model()
    model.train()
    out = cb.decode_edit(model, torch.zeros(8, 8, dtype=torch.long))
    assert out.shape == (1, 1, 32, 32) and model.training and not out.is_inference()


# ----------------------------------------------------------------------------- codebook-size lab

def test_codebook_size_runs_trains_each_variant(monkeypatch):
    profile, calls = get_profile("smoke"), []

    def fake_variant(profile_, source, name, progress=True, **changes):
        calls.append((name, changes))
        model = tiny_model(codebook_size=changes["codebook_size"])
        return SimpleNamespace(model=model, history={"step": [1, 2], "perplexity": [1.0, 2.0], "active_codes": [1, 2]})

    monkeypatch.setattr(pipeline, "load_or_train_variant", fake_variant)
    monkeypatch.setattr(pipeline, "held_out",
                        lambda source, size: SimpleNamespace(images=uint8_images(3), subjects=None, labels=None))
    runs = cb.codebook_size_runs(profile, "somewhere", sizes=(8, 16), limit=2, progress=False)
    assert list(runs.stats) == ["K=8 restart", "K=8 no restart", "K=16 restart", "K=16 no restart"]
    assert list(runs.histories) == list(runs.stats)
    assert [name for name, _ in calls] == ["K8", "K8-norestart", "K16", "K16-norestart"]
    assert calls[1][1] == {"codebook_size": 8, "restart_dead": False}
    assert runs.stats["K=16 restart"].codebook_size == 16 and runs.stats["K=8 restart"].counts.sum() == 2 * 64
    only = cb.codebook_size_runs(profile, "somewhere", sizes=(8,), restart=(True,), progress=False)
    assert list(only.stats) == ["K=8"]
