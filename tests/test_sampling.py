"""Sampling: the fast sampler reproduces the naive reference exactly under one seed (unconditional,
conditional, completion, temperature, top-k); inverse-CDF picking; sample-quality scores."""
import pytest
import torch

from vqvae_lib.config import PixelCNNConfig
from vqvae_lib.pixelcnn import GatedPixelCNN, MaskedPixelCNN
from vqvae_lib.sample_quality import (
    brain_area,
    intensity_distance,
    nearest_neighbour_ssim,
    quality_table,
    sample_quality,
)
from vqvae_lib.sampling import (
    choose,
    code_support,
    default_labels,
    labels_in_proportion,
    next_code_distribution,
    sample,
    support_for,
    widen_support,
)

SHAPE = (5, 6)


def tiny(n_labels: int = 0, seed: int = 0, model_cls=GatedPixelCNN, position: bool = False) -> torch.nn.Module:
    """float64, with weights large enough that the distributions are far from uniform (position biases too)."""
    torch.manual_seed(seed)
    cfg = PixelCNNConfig(channels=6, n_layers=3, kernel_size=3, codebook_size=7, n_labels=n_labels,
                         height=SHAPE[0] if position else 0, width=SHAPE[1] if position else 0)
    model = model_cls(cfg).double()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
            if param.abs().sum() == 0:  # the position biases start at zero
                param.normal_(0, 2.0)
    return model


@pytest.mark.parametrize("options", [
    {},
    {"temperature": 0.6},
    {"temperature": 1.7, "top_k": 3},
    {"top_k": 1},
], ids=["plain", "temperature", "temperature-top-k", "greedy"])
def test_fast_sampler_equals_naive(options):
    model = tiny()
    fast = sample(model, 4, SHAPE, seed=3, **options)
    naive = sample(model, 4, SHAPE, seed=3, naive=True, **options)
    assert fast.shape == (4, *SHAPE) and fast.dtype == torch.long
    assert torch.equal(fast, naive)
    assert len(fast.unique()) > (1 if options.get("top_k") == 1 else 3)


def test_fast_sampler_equals_naive_conditional():
    model = tiny(n_labels=3)
    labels = torch.tensor([0, 1, 2, 1])
    fast = sample(model, 4, SHAPE, labels=labels, seed=5, top_k=4)
    assert torch.equal(fast, sample(model, 4, SHAPE, labels=labels, seed=5, top_k=4, naive=True))
    one_label = sample(model, 4, SHAPE, labels=2, seed=5)
    assert torch.equal(one_label, sample(model, 4, SHAPE, labels=torch.full((4,), 2), seed=5, naive=True))
    assert not torch.equal(one_label, sample(model, 4, SHAPE, labels=0, seed=5))  # the label matters


@pytest.mark.parametrize("n_labels", [0, 2])
def test_fast_sampler_equals_naive_with_position_biases(n_labels):
    model = tiny(n_labels=n_labels, position=True)
    labels = torch.tensor([1, 0, 1, 1]) if n_labels else None
    fast = sample(model, 4, SHAPE, labels=labels, seed=7)
    assert torch.equal(fast, sample(model, 4, SHAPE, labels=labels, seed=7, naive=True))
    with torch.no_grad():
        for layer in model.layers:
            layer.row_bias.zero_()
            layer.col_bias.zero_()
    assert not torch.equal(fast, sample(model, 4, SHAPE, labels=labels, seed=7))  # position matters


def test_completion_keeps_the_top_rows_and_matches_naive():
    model = tiny(n_labels=2)
    prompt = torch.randint(0, 7, SHAPE, generator=torch.Generator().manual_seed(0))
    options = dict(labels=torch.tensor([1, 0, 1]), seed=11, prompt=prompt, keep_rows=2, temperature=0.8)
    fast = sample(model, 3, **options)
    assert torch.equal(fast, sample(model, 3, naive=True, **options))
    assert (fast[:, :2] == prompt[:2]).all()
    assert not (fast[:, 2:] == prompt[2:]).all()
    everything = sample(model, 3, labels=torch.tensor([1, 0, 1]), prompt=prompt, keep_rows=SHAPE[0])
    assert (everything == prompt).all()


def test_float32_fast_sampler_matches_naive():
    model = tiny().float()
    assert torch.equal(sample(model, 4, SHAPE, seed=1), sample(model, 4, SHAPE, seed=1, naive=True))


def test_same_seed_same_samples_other_seed_other_samples():
    model = tiny()
    first = sample(model, 3, SHAPE, seed=7)
    torch.manual_seed(123)                                  # the global state plays no part
    assert torch.equal(first, sample(model, 3, SHAPE, seed=7))
    assert not torch.equal(first, sample(model, 3, SHAPE, seed=8))


def test_plain_model_samples_with_the_naive_sampler_only():
    model = tiny(model_cls=MaskedPixelCNN)
    assert sample(model, 2, SHAPE, naive=True).shape == (2, *SHAPE)
    with pytest.raises(ValueError, match="naive=True"):
        sample(model, 2, SHAPE)
    with pytest.raises(ValueError, match="temperature"):
        sample(tiny(), 2, SHAPE, temperature=0)
    with pytest.raises(ValueError, match="prompt"):
        sample(tiny(), 2, SHAPE, keep_rows=1)


def test_choose_is_the_inverse_cdf():
    logits = torch.zeros(4, 4)                              # uniform over 4 codes: quarters of [0, 1)
    u = torch.tensor([0.1, 0.3, 0.6, 0.99], dtype=torch.float64)
    assert choose(logits, u).tolist() == [0, 1, 2, 3]
    skewed = torch.tensor([[0.0, 2.0, 1.0, -1.0]]).expand(4, 4)
    assert choose(skewed, u, top_k=1).tolist() == [1, 1, 1, 1]
    assert set(choose(skewed, torch.linspace(0, 0.999, 4).double(), top_k=2).tolist()) == {1, 2}
    assert choose(skewed, u, temperature=1e-3).tolist() == [1, 1, 1, 1]
    counts = torch.bincount(choose(torch.tensor([[0.0, 1.0]]).expand(20000, 2), torch.rand(20000).double()))
    assert counts[1] / 20000 == pytest.approx(torch.tensor([0.0, 1.0]).softmax(0)[1].item(), abs=0.02)


def blobs(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Bright discs of random radius and brightness on black: (n, 1, size, size) float in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = 5 + 8 * torch.rand(n, generator=g)
    level = 0.4 + 0.5 * torch.rand(n, generator=g)
    inside = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2)[None] < radius[:, None, None] ** 2
    return (inside * level[:, None, None]).unsqueeze(1).float()


def test_sample_quality_scores():
    train, real = blobs(40, seed=0), blobs(20, seed=1)
    copies = train[:5]
    noise = torch.rand(5, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    assert nearest_neighbour_ssim(copies, train, candidates=4).tolist() == pytest.approx([1.0] * 5, abs=1e-4)
    assert nearest_neighbour_ssim(noise, train).max() < 0.5
    assert intensity_distance(real, real) == 0
    assert intensity_distance(real, (real * 0.5).clamp(0, 1)) > 0.1
    assert brain_area(torch.cat([torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)])).tolist() == [0.0, 1.0]
    table = quality_table({"copies": sample_quality(copies, real, train),
                           "noise": sample_quality(noise, real, (train * 255).round().to(torch.uint8))})
    assert table["copies"]["memorised_share"] == 1.0 and table["noise"]["memorised_share"] == 0.0
    assert table["noise"]["area_mean"] > 0.9 > table["copies"]["area_mean"]
    assert table["copies"]["real_area_mean"] == pytest.approx(float(brain_area(real).mean()))
    assert set(table["noise"]) == {"nn_ssim_mean", "memorised_share", "intensity_w1", "area_mean", "area_std",
                                   "real_area_mean", "real_area_std", "n"}


def test_next_code_distribution_is_what_the_sampler_draws_from():
    """Drawing from next_code_distribution with the sampler's uniforms reproduces the sampler's codes."""
    from vqvae_lib.sampling import distribution, next_code_distribution, uniforms

    torch.manual_seed(0)
    model = GatedPixelCNN(PixelCNNConfig(channels=8, n_layers=2, kernel_size=3, codebook_size=6, n_labels=0))
    codes = sample(model, 1, (3, 4), temperature=0.8, top_k=3, seed=5)[0]
    u = uniforms(1, (3, 4), 5)[0]
    for i, j in [(0, 0), (1, 2), (2, 3)]:
        probs = next_code_distribution(model, codes, (i, j), temperature=0.8, top_k=3)
        assert probs.shape == (6,) and abs(float(probs.sum()) - 1) < 1e-9 and int((probs > 0).sum()) <= 3
        assert int((probs.cumsum(0) <= u[i, j] * probs.sum()).sum()) == int(codes[i, j])
    flat = distribution(torch.zeros(1, 4), temperature=2.0)
    assert torch.allclose(flat, torch.full((1, 4), 0.25, dtype=torch.float64))


def test_next_code_distribution_of_a_conditional_prior_ignores_later_codes():
    model = tiny(n_labels=2)
    codes = sample(model, 1, SHAPE, labels=1, seed=4, top_k=3)[0]
    probs = next_code_distribution(model, codes, (2, 3), labels=1, top_k=3)
    assert probs.shape == (7,) and (probs > 0).sum() == 3 and probs[codes[2, 3]] > 0
    full = next_code_distribution(model, codes, (2, 3), labels=1)
    later = codes.clone()
    later[4, 5] = (later[4, 5] + 1) % 7                                        # a later code changes nothing
    assert torch.equal(next_code_distribution(model, later, (2, 3), labels=1), full)
    assert not torch.equal(next_code_distribution(model, codes, (2, 3), labels=0), full)


def test_code_support_marks_the_codes_each_position_has():
    maps = torch.tensor([[[0, 1], [2, 3]], [[0, 4], [2, 2]]])                     # (2, 2, 2), K = 5
    seen = code_support(maps, 5)
    assert seen.shape == (1, 2, 2, 5) and seen.dtype == torch.bool
    assert seen[0, 0, 0].tolist() == [True, False, False, False, False]
    assert seen[0, 0, 1].tolist() == [False, True, False, False, True]
    assert seen[0, 1, 1].tolist() == [False, False, True, True, False]
    by_label = code_support(maps, 5, torch.tensor([1, 0]), n_labels=2)
    assert by_label[0, 0, 1].tolist() == [False, False, False, False, True]     # map 1 has label 0
    assert by_label[1, 0, 1].tolist() == [False, True, False, False, False]
    assert torch.equal(by_label.any(dim=0), seen[0])
    assert torch.equal(widen_support(by_label, by_label=False), seen)
    assert torch.equal(widen_support(seen), seen)
    near = widen_support(seen, radius=1)                    # on a 2 x 2 map every position is near every other
    assert near.shape == (1, 2, 2, 5) and near.all()
    wide = widen_support(code_support(torch.tensor([[[0, 0, 0, 1]]]), 2), radius=1)   # (1, 1, 4, 2)
    assert wide[0, 0, :, 1].tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="n_labels"):
        code_support(maps, 5, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="radius"):
        widen_support(seen, radius=-1)


@pytest.mark.parametrize("n_labels", [0, 2])
def test_sampler_draws_only_supported_codes_and_fast_equals_naive(n_labels):
    model = tiny(n_labels=n_labels, position=True)
    labels = torch.tensor([0, 1, 1, 0, 1, 0]) if n_labels else None
    generator = torch.Generator().manual_seed(0)
    support = torch.rand(max(n_labels, 1), *SHAPE, 7, generator=generator) < 0.4   # (L, h, w, K)
    support[..., 3] = True                                                          # one code allowed everywhere
    codes = sample(model, 6, SHAPE, labels=labels, seed=2, support=support, top_k=5)
    assert torch.equal(codes, sample(model, 6, SHAPE, labels=labels, seed=2, support=support, top_k=5, naive=True))
    group = labels if n_labels else torch.zeros(6, dtype=torch.long)
    rows, cols = torch.meshgrid(torch.arange(SHAPE[0]), torch.arange(SHAPE[1]), indexing="ij")
    assert support[group[:, None, None], rows, cols, codes].all()                   # every drawn code is allowed
    unrestricted = sample(model, 6, SHAPE, labels=labels, seed=2, top_k=5)
    assert not support[group[:, None, None], rows, cols, unrestricted].all()        # ... which it was not before
    everything = torch.ones(max(n_labels, 1), *SHAPE, 7, dtype=torch.bool)
    assert torch.equal(sample(model, 6, SHAPE, labels=labels, seed=2, support=everything, top_k=5), unrestricted)


def test_sampler_refuses_a_support_that_does_not_fit():
    model = tiny(n_labels=2)
    with pytest.raises(ValueError, match="support must be"):
        sample(model, 2, SHAPE, labels=0, support=torch.ones(1, 4, 4, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="support must be"):
        sample(model, 2, SHAPE, labels=0, support=torch.ones(3, *SHAPE, 7, dtype=torch.bool))
    empty = torch.ones(2, *SHAPE, 7, dtype=torch.bool)
    empty[1, 2, 3] = False
    with pytest.raises(ValueError, match="no code"):
        sample(model, 2, SHAPE, labels=0, support=empty)


def test_support_for_follows_the_setting_and_the_kind_of_label():
    model = tiny(n_labels=2)
    model.code_support = torch.zeros(2, *SHAPE, 7, dtype=torch.bool)
    model.code_support[0, ..., 1] = True
    model.code_support[1, ..., 2] = True
    assert support_for(model, "none") is None
    assert torch.equal(support_for(model, "label"), model.code_support)
    assert support_for(model, "position")[0, 0, 0].tolist() == [False, True, True, False, False, False, False]
    model.label_kind = "depth"                                 # slice-depth bands: one support per band
    assert torch.equal(support_for(model, "depth"), model.code_support)
    model.label_kind = "class"                                 # classes: one support for all
    assert torch.equal(support_for(model, "depth"), support_for(model, "position"))
    with pytest.raises(ValueError, match="support must be one of"):
        support_for(model, "everywhere")
    model.code_support = None
    with pytest.raises(ValueError, match="no code support"):
        support_for(model, "label")


def test_labels_in_proportion_follow_the_counts_in_turn():
    assert labels_in_proportion(torch.tensor([5, 5, 5, 5]), 8).tolist() == [0, 1, 2, 3, 0, 1, 2, 3]  # equal: in turn
    kaggle = torch.tensor([583, 44, 2036, 1434])                  # the kaggle classes' training slices
    labels = labels_in_proportion(kaggle, 256)
    assert torch.bincount(labels, minlength=4).tolist() == [36, 3, 127, 90]  # 36.4, 2.7, 127.2, 89.6: by remainder
    assert labels[:4].tolist() == [0, 1, 2, 3] and labels[-1].item() == 2      # in turn while each lasts
    assert labels_in_proportion(torch.tensor([0, 3]), 4).tolist() == [1, 1, 1, 1]   # a label without slices: never
    assert labels_in_proportion(torch.tensor([1, 1, 1]), 2).tolist() == [0, 1]      # ties: the lower labels
    for bad in (torch.tensor([0, 0]), torch.tensor([-1, 2]), torch.tensor([])):
        with pytest.raises(ValueError, match="counts"):
            labels_in_proportion(bad, 4)


def test_default_labels_of_a_prior():
    conditional = GatedPixelCNN(PixelCNNConfig(channels=8, n_layers=2, codebook_size=4, n_labels=3))
    assert default_labels(conditional, 4).tolist() == [0, 1, 2, 0]            # no counts saved: in turn
    conditional.label_counts = torch.tensor([1, 0, 3])
    assert default_labels(conditional, 4).tolist() == [0, 2, 2, 2]
    assert default_labels(GatedPixelCNN(PixelCNNConfig(channels=8, n_layers=2, codebook_size=4)), 4) is None
