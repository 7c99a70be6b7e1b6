"""The causal transformer prior: each code's logits depend only on the codes before it (and the label), the
key/value-cache sampler reproduces the naive one exactly under one seed, the likelihood is the cross-entropy
of its logits, bad settings are refused, and the pipeline trains, saves and loads it."""
import math

import pytest
import torch
from conftest import pipeline_prior_roundtrip, push_weights

from vqvae_lib.coarse import build_prior
from vqvae_lib.config import PixelCNNConfig
from vqvae_lib.pixelcnn import init_from_codes, receptive_field
from vqvae_lib.prior import evaluate_prior
from vqvae_lib.sampling import sample
from vqvae_lib.transformer import CodeTransformer

K, SHAPE = 7, (4, 5)


def tiny(n_labels: int = 0, seed: int = 0) -> CodeTransformer:
    """float64, weights pushed away from their small init so that the distributions are far from uniform."""
    torch.manual_seed(seed)
    cfg = PixelCNNConfig(architecture="transformer", channels=8, n_layers=2, heads=2, codebook_size=K,
                         n_labels=n_labels, height=SHAPE[0], width=SHAPE[1])
    return push_weights(CodeTransformer(cfg).double(), 0.7)


def test_logits_depend_only_on_the_codes_before_each_position():
    model = tiny(n_labels=2)
    codes, labels = torch.randint(K, (3, *SHAPE)), torch.tensor([0, 1, 0])
    logits = model(codes, labels)
    assert logits.shape == (3, K, *SHAPE)
    changed = codes.clone()
    changed[:, 2, 1] = (changed[:, 2, 1] + 1) % K
    moved = (model(changed, labels) - logits).abs().amax(dim=(0, 1))                 # (h, w)
    flat = moved.flatten()
    t = 2 * SHAPE[1] + 1
    assert flat[:t + 1].abs().max() == 0          # up to and including the changed position: untouched
    assert (flat[t + 1:] > 0).all()               # every later position sees it (attention reaches back)
    other_label = model(codes, torch.tensor([1, 0, 1]))
    assert (other_label - logits).abs().amax() > 0


def test_receptive_field_is_every_earlier_position():
    field = receptive_field(tiny(), (2, 2), SHAPE).flatten()
    t = 2 * SHAPE[1] + 2
    assert (field[:t] > 0).all() and field[t:].abs().max() == 0


@pytest.mark.parametrize("options", [{}, {"temperature": 0.7, "top_k": 3}, {"top_k": 1}],
                         ids=["plain", "temperature-top-k", "greedy"])
def test_cache_sampler_equals_naive_and_is_seeded(options):
    model = tiny(n_labels=3)
    labels = torch.tensor([0, 1, 2, 1])
    fast = sample(model, 4, SHAPE, labels=labels, seed=3, **options)
    assert fast.shape == (4, *SHAPE) and fast.dtype == torch.long
    assert torch.equal(fast, sample(model, 4, SHAPE, labels=labels, seed=3, naive=True, **options))
    assert torch.equal(fast, sample(model, 4, SHAPE, labels=labels, seed=3, **options))
    if not options.get("top_k") == 1:
        assert not torch.equal(fast, sample(model, 4, SHAPE, labels=labels, seed=4, **options))


def test_completion_keeps_the_prompt_rows_and_matches_naive():
    model = tiny()
    prompt = torch.randint(K, SHAPE)
    fast = sample(model, 3, prompt=prompt, keep_rows=2, seed=1)
    assert torch.equal(fast[:, :2], prompt[:2].expand(3, 2, SHAPE[1]))
    assert torch.equal(fast, sample(model, 3, prompt=prompt, keep_rows=2, seed=1, naive=True))


def test_cache_step_gives_the_full_pass_logits_at_every_position():
    model = tiny(n_labels=2)
    codes, labels = torch.randint(K, (2, *SHAPE)), torch.tensor([1, 0])
    full = model(codes, labels)                                                       # (2, K, h, w)
    caches, previous = model.new_cache(2), None
    for t in range(SHAPE[0] * SHAPE[1]):
        i, j = divmod(t, SHAPE[1])
        assert torch.allclose(model.step(previous, t, labels, caches), full[:, :, i, j]), (i, j)
        previous = codes[:, i, j]


def test_fresh_transformer_predicts_nearly_uniform_codes():
    model = tiny(n_labels=2)
    codes, labels = torch.randint(K, (2, *SHAPE)), torch.tensor([1, 0])
    torch.manual_seed(0)
    fresh = CodeTransformer(model.config)   # the GPT-2 init: small weights, nearly uniform predictions
    bits = evaluate_prior(fresh, codes, labels)["bits_per_code"]
    assert bits == pytest.approx(math.log2(K), abs=0.05)


def test_init_from_codes_applies_to_the_transformer():
    model = tiny()
    counts = torch.tensor([9.0, 0, 0, 0, 0, 0, 0])
    init_from_codes(model, torch.randn(K, 3), counts)
    probs = model(torch.randint(K, (1, *SHAPE))).softmax(dim=1)                        # (1, K, h, w)
    assert torch.allclose(probs[0, :, 0, 0], ((counts + 1) / (counts.sum() + K)).double())


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="architecture"):
        PixelCNNConfig(architecture="lstm")
    with pytest.raises(ValueError, match="heads"):
        PixelCNNConfig(architecture="transformer", channels=8, heads=3)
    with pytest.raises(ValueError, match="no coarse map"):
        PixelCNNConfig(architecture="transformer", channels=8, heads=2, coarse_codes=4)
    with pytest.raises(ValueError, match="height and width"):
        CodeTransformer(PixelCNNConfig(architecture="transformer", channels=8, heads=2, codebook_size=K))
    model = tiny()
    with pytest.raises(ValueError, match="4x5 code maps"):
        model(torch.randint(K, (1, 5, 4)))
    with pytest.raises(ValueError, match="4x5 code maps"):
        sample(model, 1, (5, 4))
    with pytest.raises(ValueError, match="codes must lie in"):
        sample(model, 1, prompt=torch.full(SHAPE, K), keep_rows=1)
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randint(K, (1, *SHAPE)), torch.tensor([0]))
    with pytest.raises(ValueError, match="conditional on 2 labels"):
        tiny(n_labels=2)(torch.randint(K, (1, *SHAPE)))


def test_pipeline_trains_saves_and_loads_a_transformer_prior(tmp_path, monkeypatch):
    cfg = PixelCNNConfig(architecture="transformer", channels=8, n_layers=2, heads=2)
    model, result, loaded = pipeline_prior_roundtrip(tmp_path, monkeypatch, cfg)
    assert isinstance(model, CodeTransformer) and result.step == 3
    assert (model.config.height, model.config.width) == (4, 4)
    assert isinstance(loaded, CodeTransformer) and loaded.latent_shape == (4, 4)
    codes = sample(loaded, 2, labels=0, seed=0)
    assert codes.shape == (2, 4, 4) and torch.equal(codes, sample(loaded, 2, labels=0, seed=0, naive=True))
    assert isinstance(build_prior(loaded.config), CodeTransformer)
