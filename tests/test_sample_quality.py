"""The sample-quality measures on constructed cases whose answer is known: copies of training slices, shuffled
pixels, noise, inverted images, brains in the border, right and wrong labels."""
import pytest
import torch

from vqvae_lib.sample_quality import (
    MEMORISED,
    border_tissue,
    critic,
    depth_agreement,
    empty_frame,
    load_samples,
    measure,
    mirror_symmetry,
    nearest_neighbour_ssim,
    nearest_neighbours,
    pairwise_ssim,
    random_pairs,
    real_ceiling,
    save_samples,
    separability,
    share_above,
    slice_measures,
    two_sample_accuracies,
    two_sample_accuracy,
)


def brains(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Synthetic "brains": textured ellipses of random size, centre and texture on black, (n, 1, S, S) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    centre = 0.1 * (torch.rand(n, 2, 1, 1, generator=g) - 0.5)                  # (n, 2, 1, 1)
    axes = 0.55 + 0.2 * torch.rand(n, 2, 1, 1, generator=g)
    inside = ((yy - centre[:, :1]) / axes[:, :1]) ** 2 + ((xx - centre[:, 1:]) / axes[:, 1:]) ** 2 < 1
    freq = 3 + 6 * torch.rand(n, 2, 1, 1, generator=g)
    texture = 0.5 + 0.25 * torch.sin(freq[:, :1] * xx) * torch.cos(freq[:, 1:] * yy)
    texture = texture + 0.1 * torch.rand(n, 1, size, size, generator=g)
    return (inside * texture).clamp(0, 1)                                       # (n, 1, S, S)


def shuffled_pixels(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The pixels of each image permuted at random: the same intensities, no structure."""
    g = torch.Generator().manual_seed(seed)
    flat = images.flatten(1)
    order = torch.stack([torch.randperm(flat.shape[1], generator=g) for _ in range(len(images))])
    return flat.gather(1, order).view_as(images)


@pytest.fixture(scope="module")
def train():
    return brains(120, seed=0)


def test_nearest_neighbours_find_the_copied_slice(train):
    picks = torch.tensor([3, 50, 7, 119, 64])
    found = nearest_neighbours(train[picks], train, chunk=2)
    assert found.ssim.tolist() == pytest.approx([1.0] * 5, abs=1e-5)
    assert found.index.tolist() == picks.tolist()
    uint8 = (train * 255).round().to(torch.uint8)
    assert nearest_neighbours(uint8[picks], uint8).index.tolist() == picks.tolist()
    assert torch.equal(nearest_neighbour_ssim(train[picks], train), found.ssim)


def test_shuffled_pixels_look_like_no_slice(train):
    nn_ssim = nearest_neighbour_ssim(shuffled_pixels(brains(10, seed=1)), train)
    assert nn_ssim.max() < 0.3 and share_above(nn_ssim) == 0.0
    assert share_above(torch.tensor([0.5, 0.7, 0.9])) == pytest.approx(2 / 3)
    assert share_above(torch.tensor([0.5, 0.97]), MEMORISED) == 0.5


def test_depth_agreement_with_right_and_wrong_labels(train):
    labels = torch.arange(len(train)) % 4
    picks = torch.arange(0, 120, 7)
    index = nearest_neighbours(train[picks], train).index
    assert depth_agreement(index, labels, labels[picks]) == 1.0
    assert depth_agreement(index, labels, (labels[picks] + 1) % 4) == 0.0
    assert depth_agreement(torch.tensor([0, 1]), labels, torch.tensor([0, 3])) == 0.5
    with pytest.raises(ValueError, match="requested_labels"):
        depth_agreement(index, labels, labels[:3])


def test_empty_frame_is_where_no_slice_has_tissue():
    images = torch.zeros(10, 1, 8, 8)
    images[:, :, 2:6, 2:6] = 0.5
    images[0, 0, 0, 0] = 0.5                                             # one slice in ten has tissue there
    frame = empty_frame(images, margin=0)
    assert frame.shape == (8, 8) and frame.dtype == torch.bool
    assert not frame[2:6, 2:6].any() and not frame[0, 0] and frame.sum() == 64 - 16 - 1
    assert empty_frame(images, max_share=0.1, margin=0)[0, 0]           # at most 10 % of slices may have tissue
    assert empty_frame((images * 255).round().to(torch.uint8), margin=0).equal(frame)
    wide = empty_frame(images, max_share=0.1, margin=1)                 # one pixel away from any tissue
    assert not wide[1:7, 1:7].any() and wide[0].all() and wide.sum() == 64 - 36


def test_the_frame_keeps_a_margin_from_real_outlines():
    train = torch.zeros(5, 1, 128, 128)
    train[:, :, 32:96, 32:96] = 0.5                                      # every slice has the same outline
    frame = empty_frame(train)                                            # 4-pixel margin at 128 x 128
    assert not frame[28:100, 28:100].any() and frame[27].all() and frame[:, 100].all()
    wider = torch.zeros(2, 1, 128, 128)
    wider[0, :, 30:98, 30:98] = 0.5                                       # 2 pixels wider: still inside
    wider[1, :, 20:108, 20:108] = 0.5                                     # 12 pixels wider: tissue in the border
    assert border_tissue(wider, frame).tolist() == [False, True]


def test_border_tissue_flags_brains_in_the_border():
    train, held_out = brains(300, seed=0, size=64), brains(100, seed=1, size=64)
    frame = empty_frame(train)
    assert frame[0].all() and frame[-1].all() and not frame[32, 32]
    assert not border_tissue(train, frame).any()                        # by construction of the frame
    assert border_tissue(held_out, frame).sum() <= 2                    # real slices of the same kind: (almost) none
    bottom = held_out[:3].clone()
    bottom[:, :, -4:, 8:56] = 0.8                                       # a bright bar along the bottom border
    assert border_tissue(bottom, frame).all()
    speck = held_out[:1].clone()
    speck[:, :, -1, :4] = 0.8                                           # 4 pixels: not more than 16 / 128^2 of 64^2
    assert not border_tissue(speck, frame) and border_tissue(speck, frame, min_pixels=3)
    with pytest.raises(ValueError, match="frame"):
        border_tissue(held_out, frame[:32])


def test_mirror_symmetry_of_symmetric_lopsided_and_empty_outlines():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    ellipse = (((yy - 15) / 10) ** 2 + ((xx - 12) / 7) ** 2 < 1).float()       # symmetric, off the image's centre
    flag = torch.zeros(32, 32)
    flag[10:20, 10:14] = 1                                                      # a 10 x 4 bar (40 pixels) ...
    flag[10:12, 14:16] = 1                                                      # ... with a 2 x 2 flag on its right
    # centre column (40 * 11.5 + 4 * 14.5) / 44 = 11.77: mirrored x -> 24 - x; by hand, 34 pixels shared of 54
    tail = ellipse.clone()
    tail[14:17, 19:27] = 1                                                      # a growth on one side only
    images = torch.stack([ellipse, flag, tail, torch.zeros(32, 32)])[:, None] * 0.7
    sym = mirror_symmetry(images)
    assert sym.shape == (4,) and sym[0] == 1.0 and sym[3] == 0.0
    assert sym[1] == pytest.approx(34 / 54) and 0.6 < sym[2] < 0.95
    assert torch.equal(mirror_symmetry(images.flip(-1)), sym)                   # left and right alike
    assert torch.equal(mirror_symmetry((images * 255).to(torch.uint8)), sym)    # uint8 images too
    report = measure(images[:3], images[:3], images, two_sample=False)
    assert report.summary()["mirror_symmetry"] == pytest.approx(float(sym[:3].mean()))


def test_slice_measures_of_a_disc_a_square_a_two_tone_bar_and_an_empty_slice():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    disc = ((yy - 31.5) ** 2 + (xx - 31.5) ** 2 < 20 ** 2).float() * 0.7       # centred, radius 20
    square = torch.zeros(64, 64)
    square[10:30, 20:40] = 0.9                                                  # 20 x 20, rows 10-29, columns 20-39
    bar = torch.zeros(64, 64)
    bar[0:4, 0:8] = 0.4
    bar[0:4, 8:16] = 0.8                                                        # half at 0.4, half at 0.8
    m = slice_measures(torch.stack([disc, square, bar, torch.zeros(64, 64)])[:, None])
    assert all(v.shape == (4,) for v in m.values())
    assert m["brain area"][1] == pytest.approx(400 / 64 ** 2) and m["brain area"][0] == pytest.approx(0.3086, abs=1e-3)
    assert m["width"][1] == m["height"][1] == pytest.approx(20 / 64) and m["width"][2] == pytest.approx(16 / 64)
    assert m["centre row"][0] == m["centre column"][0] == pytest.approx(0.5)    # the image's centre
    assert m["centre row"][1] == pytest.approx(20 / 64) and m["centre column"][1] == pytest.approx(30 / 64)
    assert m["outline roughness"][1] == pytest.approx(76 / 20)                  # 76 edge pixels, sqrt(400) = 20
    assert 3.0 < m["outline roughness"][0] < m["outline roughness"][1]           # a disc is smoother than a square
    assert m["mirror symmetry"][0] == m["mirror symmetry"][1] == 1.0
    assert m["brain intensity mean"][1] == pytest.approx(0.9) and m["brain intensity spread"][1] == pytest.approx(0)
    assert m["brain intensity mean"][2] == pytest.approx(0.6) and m["brain intensity spread"][2] == pytest.approx(0.2)
    assert all(float(v[3]) == 0.0 for v in m.values())                           # no brain: 0 everywhere


def test_slice_measures_do_not_depend_on_the_chunk_a_slice_falls_in():
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(520, 1, 16, 16, generator=g) * 255).to(torch.uint8)   # 512 a chunk: a second one of 8
    m = slice_measures(images)
    assert all(v.shape == (520,) for v in m.values())
    for i in (0, 511, 512, 519):                                                # either side of the boundary
        alone = slice_measures(images[i:i + 1])
        assert all(torch.allclose(m[name][i:i + 1], alone[name]) for name in m), i


def test_separability_of_identical_shifted_and_overlapping_sets():
    a = torch.randn(300, generator=torch.Generator().manual_seed(0))
    assert separability(a, a) == pytest.approx(0.5)                             # ties count half
    assert separability(a, a + 10) == separability(a + 10, a) == 1.0            # whichever side is higher
    # 16 pairs: a > b once (3 > 2), two ties (2, 3): AUC (1 + 2 / 2) / 16 = 0.125, folded 0.875
    assert separability(torch.tensor([0.0, 1, 2, 3]), torch.tensor([2.0, 3, 4, 5]), chunk=3) == pytest.approx(0.875)
    with pytest.raises(ValueError, match="non-empty"):
        separability(a, torch.zeros(0))


def test_pairwise_ssim_of_identical_and_independent_images(train):
    assert pairwise_ssim(train[:1].expand(10, -1, -1, -1)) == pytest.approx(1.0, abs=1e-6)
    noise = torch.rand(30, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert pairwise_ssim(noise) < 0.1
    every_pair = pairwise_ssim(train[:50])                              # 1225 pairs: all of them
    some_pairs = pairwise_ssim(train[:50], max_pairs=300, seed=1)       # a random 300 of them
    assert 0.1 < every_pair < 0.9 and some_pairs == pytest.approx(every_pair, abs=0.03)
    assert some_pairs == pairwise_ssim(train[:50], max_pairs=300, seed=1) != pairwise_ssim(train[:50], 300, seed=2)
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_ssim(train[:1])


def test_random_pairs_are_distinct_and_ordered():
    pairs = random_pairs(20, 150, torch.Generator().manual_seed(0))     # 150 of the 190 pairs
    assert pairs.shape == (150, 2) and (pairs[:, 0] < pairs[:, 1]).all() and pairs.max() < 20
    assert len({tuple(p) for p in pairs.tolist()}) == 150


def test_two_sample_accuracy_cannot_tell_real_from_real():
    assert sum(p.numel() for p in critic().parameters()) < 25_000
    state = torch.get_rng_state()
    alike = two_sample_accuracy(brains(64, seed=1), brains(64, seed=2))      # two sets of the same kind
    assert torch.equal(torch.get_rng_state(), state)                    # the global RNG is left as it was
    assert alike < 0.7


def test_two_sample_accuracy_tells_different_images_apart():
    real, other_real = brains(32, seed=1), brains(32, seed=2)
    inverted = two_sample_accuracy(1 - real, other_real)
    assert inverted > 0.9 and inverted == two_sample_accuracy(1 - real, other_real)   # deterministic given the seed
    assert two_sample_accuracy(shuffled_pixels(real), other_real) > 0.9
    square = real.clone()
    square[:, :, 8:24, 8:24] = 1.0                                      # a big bright square
    assert two_sample_accuracy(square, other_real) > 0.9
    with pytest.raises(ValueError, match="folds"):
        two_sample_accuracy(real[:3], other_real)


def test_every_critic_learns_a_faint_difference():
    # slices 10 % darker: critics trained to the end (cosine-decayed rate) find it with every seed; the earlier
    # critic (12 epochs at a constant rate) scored 0.75, 0.54 and 0.55 here: its last weights landed anywhere
    real, other_real = brains(40, seed=1), brains(40, seed=2)
    assert min(two_sample_accuracies(real * 0.9, other_real, 3)) > 0.75


def test_a_critic_score_is_the_mean_of_critics_with_successive_seeds(train):
    samples, real = brains(20, seed=9), brains(20, seed=10)
    runs = two_sample_accuracies(samples, real, 3, seed=4)                  # 5 folds, as measure uses
    assert runs == [two_sample_accuracy(samples, real, seed=s) for s in (4, 5, 6)]
    summary = measure(samples, real, train, seed=4, critic_repeats=3).summary()
    assert summary["two_sample_accuracy_runs"] == runs
    assert summary["two_sample_accuracy"] == pytest.approx(sum(runs) / 3)
    single = measure(samples, real, train, seed=4, critic_repeats=1).summary()
    assert single["two_sample_accuracy"] == runs[0] and "two_sample_accuracy_runs" not in single
    with pytest.raises(ValueError, match="repeats"):
        two_sample_accuracies(samples, real, 0)


def test_measure_on_copies_of_training_slices(train):
    labels = torch.arange(len(train)) % 4
    picks = torch.arange(0, 120, 4)                                     # 30 copies
    report = measure(train[picks], brains(40, seed=3), train, train_labels=labels, requested_labels=labels[picks],
                     two_sample=False)
    summary = report.summary()
    assert summary["nn_ssim_mean"] == pytest.approx(1.0, abs=1e-5) and summary["memorised_share"] == 1.0
    assert summary["nn_ssim_share_above_0.6"] == 1.0 and summary["depth_agreement"] == 1.0
    assert summary["pairwise_ssim"] == pairwise_ssim(train[picks]) and summary["border_tissue_samples"] == 0
    assert summary["n"] == 30 and "two_sample_accuracy" not in summary
    assert set(summary) >= {"intensity_w1", "area_mean", "area_std", "real_area_mean", "real_area_std"}
    assert all(isinstance(value, (int, float)) for value in summary.values())


def test_measure_of_shuffled_pixels_and_the_real_ceiling(train):
    real = brains(80, seed=4)
    shuffled = measure(shuffled_pixels(real[:40]), real[40:], train, seed=1).summary()
    assert shuffled["nn_ssim_share_above_0.6"] == 0.0 and shuffled["two_sample_accuracy"] > 0.9
    assert shuffled["intensity_w1"] < 0.01                              # the same intensities, shuffled
    ceiling = real_ceiling(real, train, 40, train_labels=torch.arange(120) % 4, real_labels=torch.zeros(80))
    summary = ceiling.summary()
    assert summary["n"] == 40 and summary["memorised_share"] == 0.0 and summary["two_sample_accuracy"] < 0.7
    assert summary["nn_ssim_mean"] > shuffled["nn_ssim_mean"] + 0.3 and 0 <= summary["depth_agreement"] <= 1
    with pytest.raises(ValueError, match="n must lie"):
        real_ceiling(real, train, 80)
    with pytest.raises(ValueError, match="one size"):
        measure(real[:4], brains(4, seed=5, size=16), train)


def test_real_ceiling_with_stand_ins_scores_them_against_the_same_real_reference(train):
    real = brains(60, seed=8)
    plain = real_ceiling(real, train, 30, two_sample=False).summary()
    assert real_ceiling(real, train, 30, stand_ins=real.clone(), two_sample=False).summary() == plain
    blurred = torch.nn.functional.avg_pool2d(real, 5, stride=1, padding=2)      # a decoder that loses the texture
    worse = real_ceiling(real, train, 30, stand_ins=blurred, seed=0).summary()
    assert worse["nn_ssim_mean"] < plain["nn_ssim_mean"] - 0.05 and worse["pairwise_ssim"] > plain["pairwise_ssim"]
    assert worse["real_area_mean"] == plain["real_area_mean"]                  # the reference stays the real slices
    with pytest.raises(ValueError, match="one image per real slice"):
        real_ceiling(real, train, 30, stand_ins=real[:59])


def test_saved_samples_load_back_with_their_records(tmp_path):
    images = brains(3, seed=6)
    records = [{"label": i % 2, "seed": 7} for i in range(3)]
    files = save_samples(tmp_path / "s", images, records, image_size=32, label_names=["a", "b"])
    assert [f.name for f in files] == ["sample_0000.png", "sample_0001.png", "sample_0002.png"]
    loaded = load_samples(tmp_path / "s")
    assert loaded.images.dtype == torch.uint8 and loaded.images.shape == (3, 1, 32, 32)
    assert torch.equal(loaded.images, (images * 255).round().to(torch.uint8))
    assert [r["label"] for r in loaded.records] == [0, 1, 0] and loaded.meta["label_names"] == ["a", "b"]
    (tmp_path / "s" / "samples.json").unlink()                          # without samples.json: every PNG
    assert torch.equal(load_samples(tmp_path / "s").images, loaded.images)
    save_samples(tmp_path / "t", images, records, image_size=64)
    with pytest.raises(ValueError, match="image_size 64"):
        load_samples(tmp_path / "t")
    with pytest.raises(ValueError, match="no PNG"):
        load_samples(tmp_path / "s" / "..")
