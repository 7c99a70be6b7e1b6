"""The masked-code prior: every position sees the whole visible map both ways, a hidden code tells it nothing,
its eval likelihood is a proper distribution over code maps, the parallel sampler is seeded, fills every position,
keeps a prompt's rows and obeys a support, bad settings are refused, and the pipeline trains, saves and loads it."""
import itertools

import pytest
import torch
from conftest import pipeline_prior_roundtrip, push_weights

from vqvae_lib.coarse import build_prior
from vqvae_lib.config import PixelCNNConfig, TrainConfig
from vqvae_lib.masked import MaskedCodePrior, hidden_after
from vqvae_lib.prior import prior_loss
from vqvae_lib.sampling import choose, code_support, next_code_distribution, sample, uniforms
from vqvae_lib.train import fit

K, SHAPE = 7, (4, 8)


def tiny(n_labels: int = 0, seed: int = 0, k: int = K, shape=SHAPE, steps: int = 3) -> MaskedCodePrior:
    """float64, weights pushed away from their init so that the distributions are far from uniform."""
    torch.manual_seed(seed)
    cfg = PixelCNNConfig(architecture="masked", channels=8, n_layers=1, codebook_size=k, n_labels=n_labels,
                         height=shape[0], width=shape[1], mask_steps=steps)
    return push_weights(MaskedCodePrior(cfg).double().eval(), 0.5)


def test_every_position_sees_every_visible_code_and_no_hidden_one():
    model = tiny(n_labels=2)
    codes, labels = torch.randint(K, (2, *SHAPE)), torch.tensor([0, 1])
    logits = model(codes, labels)
    assert logits.shape == (2, K, *SHAPE)
    changed = codes.clone()
    changed[:, -1, -1] = (changed[:, -1, -1] + 1) % K          # the last position in raster order
    assert ((model(changed, labels) - logits).abs().amax(dim=1) > 0).all()   # reaches every position, (0, 0) too
    hidden = torch.zeros(2, *SHAPE, dtype=torch.bool)
    hidden[:, 1, 2] = True
    a, b = codes.clone(), codes.clone()
    b[:, 1, 2] = (b[:, 1, 2] + 3) % K                          # differs only where it is hidden
    assert torch.equal(model(model.hide(a, hidden), labels), model(model.hide(b, hidden), labels))
    assert (model(codes, torch.tensor([1, 0])) - logits).abs().amax() > 0


def test_hidden_after_is_the_cosine_schedule_and_ends_with_nothing_hidden():
    for steps, total in [(1, 5), (3, 32), (12, 1024), (12, 5)]:
        left = [hidden_after(s, steps, total) for s in range(steps)]
        assert left[-1] == 0 and all(a >= b for a, b in zip([total] + left, left))
        assert all(a > b for a, b in zip([total] + left, left) if a > 0)
    assert [hidden_after(s, 4, 100) for s in range(4)] == [92, 70, 38, 0]


def test_eval_likelihood_is_a_distribution_over_all_code_maps():
    model = tiny(n_labels=2, k=2, shape=(4, 4), steps=3)
    maps = torch.tensor(list(itertools.product([0, 1], repeat=16))).view(-1, 4, 4)     # all 2^16 maps
    with torch.no_grad():
        nats = torch.cat([per_map(model, chunk) for chunk in maps.split(8192)])          # (2^16,)
        labels = torch.ones(3, dtype=torch.long)
        assert float(model.group_nll(maps[:3], labels)) == pytest.approx(float(nats[:3].sum()), rel=1e-6)
    assert (nats > 0).all()
    assert float(torch.exp(-nats).sum()) == pytest.approx(1.0, abs=1e-9)


def per_map(model: MaskedCodePrior, maps: torch.Tensor) -> torch.Tensor:
    """The eval NLL in nats of each map (B,) under label 1, written out step by step (``group_nll`` sums it)."""
    B, (h, w) = len(maps), maps.shape[-2:]
    rank = torch.empty(h * w, dtype=torch.long)
    rank[model.order()] = torch.arange(h * w)
    rank, out, revealed = rank.view(h, w), torch.zeros(B, dtype=torch.float64), 0
    for step in range(model.config.mask_steps):
        now = h * w - hidden_after(step, model.config.mask_steps, h * w)
        logits = model(model.hide(maps, (rank >= revealed).expand(B, h, w)), torch.ones(B, dtype=torch.long))
        nats = torch.nn.functional.cross_entropy(logits, maps, reduction="none")          # (B, h, w)
        out += nats[:, (rank >= revealed) & (rank < now)].sum(dim=1)
        revealed = now
    return out


def test_training_nll_is_the_masked_cross_entropy_and_learns():
    model = tiny()
    model.train()
    codes = torch.randint(K, (4, *SHAPE))
    loss, metrics = prior_loss(model, codes)
    assert torch.isfinite(loss) and loss.requires_grad and metrics["bits_per_code"] > 0
    constant = torch.full((16, *SHAPE), 3)
    fresh = tiny(seed=1).float()
    result = fit(fresh, constant, prior_loss, TrainConfig(batch_size=4, steps=60, lr=1e-2, warmup_steps=0,
                                                          eval_every=0, checkpoint_every=0), progress=False)
    assert torch.equal(sample(result.model, 3, SHAPE, seed=0, top_k=1), constant[:3])


def test_one_step_draws_every_code_from_the_fully_hidden_prediction():
    model = tiny(n_labels=2, steps=3)
    labels = torch.tensor([0, 1, 1])
    codes = sample(model, 3, SHAPE, labels=labels, seed=5, temperature=0.8, top_k=4, mask_steps=1)
    assert not torch.equal(codes, sample(model, 3, SHAPE, labels=labels, seed=5, temperature=0.8, top_k=4))
    logits = model(torch.full((3, *SHAPE), K), labels).permute(0, 2, 3, 1).reshape(-1, K)      # (3 h w, K)
    u = uniforms(3, SHAPE, torch.Generator().manual_seed(5)).reshape(-1)
    assert torch.equal(codes.reshape(-1), choose(logits, u, 0.8, 4))


@pytest.mark.parametrize("options", [{}, {"temperature": 0.7, "top_k": 3}, {"mask_steps": 6, "mask_noise": 0.0}],
                         ids=["plain", "temperature-top-k", "most-confident-first"])
def test_sampler_is_seeded_and_fills_every_position(options):
    model = tiny(n_labels=3, steps=4)
    labels = torch.tensor([0, 1, 2, 1])
    codes = sample(model, 4, SHAPE, labels=labels, seed=3, **options)
    assert codes.shape == (4, *SHAPE) and codes.dtype == torch.long and int(codes.max()) < K
    assert torch.equal(codes, sample(model, 4, SHAPE, labels=labels, seed=3, **options))
    assert not torch.equal(codes, sample(model, 4, SHAPE, labels=labels, seed=4, **options))


def test_confidence_noise_changes_the_order_of_revealing():
    model = tiny(n_labels=2, steps=4)
    labels = torch.tensor([0, 1, 0, 1])
    greedy = sample(model, 4, SHAPE, labels=labels, seed=7, mask_noise=0.0)
    assert not torch.equal(greedy, sample(model, 4, SHAPE, labels=labels, seed=7, mask_noise=1000.0))
    assert torch.equal(greedy, sample(model, 4, SHAPE, labels=labels, seed=7, mask_noise=0.0))


def test_completion_keeps_the_prompt_rows_and_support_is_obeyed():
    model = tiny(n_labels=2)
    prompt = torch.randint(K, SHAPE)
    codes = sample(model, 3, prompt=prompt, keep_rows=2, labels=1, seed=1)
    assert torch.equal(codes[:, :2], prompt[:2].expand(3, 2, SHAPE[1]))
    train = torch.randint(3, (6, *SHAPE))                        # only codes 0-2 occur
    train[3:] += 4                                               # ... under label 0; 4-6 under label 1
    support = code_support(train, K, torch.tensor([0, 0, 0, 1, 1, 1]), 2)
    drawn = sample(model, 4, SHAPE, labels=torch.tensor([0, 1, 0, 1]), seed=2, support=support)
    assert drawn[[0, 2]].max() <= 2 and drawn[[1, 3]].min() >= 4
    assert bool(support[torch.tensor([0, 1, 0, 1])].gather(3, drawn[..., None]).all())


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="mask_steps"):
        PixelCNNConfig(architecture="masked", mask_steps=0)
    with pytest.raises(ValueError, match="no coarse map"):
        PixelCNNConfig(architecture="masked", coarse_codes=4)
    with pytest.raises(ValueError, match="divisible by 4"):
        MaskedCodePrior(PixelCNNConfig(architecture="masked", channels=8, codebook_size=K, height=6, width=8))
    with pytest.raises(ValueError, match="divisible by 8"):
        MaskedCodePrior(PixelCNNConfig(architecture="masked", channels=12, codebook_size=K, height=4, width=8))
    model = tiny()
    with pytest.raises(ValueError, match="4x8 code maps"):
        model(torch.randint(K, (1, 8, 4)))
    with pytest.raises(ValueError, match="mask_steps >= 1 and mask_noise >= 0"):
        sample(model, 1, SHAPE, mask_noise=-1.0)
    with pytest.raises(ValueError, match="for a masked-code prior, not a GatedPixelCNN"):
        sample(build_prior(PixelCNNConfig(channels=8, n_layers=2, codebook_size=K)), 1, SHAPE, mask_steps=4)
    with pytest.raises(ValueError, match="one sampler"):
        sample(model, 1, SHAPE, naive=True)
    with pytest.raises(ValueError, match="codes must lie in"):
        sample(model, 1, prompt=torch.full(SHAPE, K), keep_rows=1)
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randint(K, (1, *SHAPE)), torch.tensor([0]))
    with pytest.raises(ValueError, match="conditional on 2 labels"):
        tiny(n_labels=2)(torch.randint(K, (1, *SHAPE)))


def test_next_code_distribution_reads_only_the_codes_before_the_position():
    """The widget's one-position view: a masked prior predicts (i, j) from the raster prefix, hidden after it."""
    model = tiny(n_labels=2)
    codes = torch.randint(K, SHAPE)
    probs = next_code_distribution(model, codes, (1, 3), labels=1)
    assert probs.shape == (K,) and probs.dtype == torch.float64 and abs(float(probs.sum()) - 1) < 1e-9
    later = codes.clone()
    later[1, 3:] = (later[1, 3:] + 1) % K                      # (1, 3) itself and everything after it
    later[2:] = (later[2:] + 2) % K
    assert torch.equal(next_code_distribution(model, later, (1, 3), labels=1), probs)
    earlier = codes.clone()
    earlier[1, 2] = (earlier[1, 2] + 1) % K                    # the position just before
    assert not torch.allclose(next_code_distribution(model, earlier, (1, 3), labels=1), probs)
    hidden = torch.arange(codes.numel()).view(SHAPE) >= 1 * SHAPE[1] + 3
    expected = torch.softmax(model(model.hide(codes, hidden)[None], torch.tensor([1]))[0, :, 1, 3].double(), 0)
    assert torch.allclose(probs, expected)


def test_pipeline_trains_saves_and_loads_a_masked_prior(tmp_path, monkeypatch):
    cfg = PixelCNNConfig(architecture="masked", channels=8, n_layers=1, mask_steps=2)
    model, result, loaded = pipeline_prior_roundtrip(tmp_path, monkeypatch, cfg)
    assert isinstance(model, MaskedCodePrior) and result.step == 3
    assert isinstance(loaded, MaskedCodePrior) and loaded.latent_shape == (4, 4)
    codes = sample(loaded, 2, labels=0, seed=0)
    assert codes.shape == (2, 4, 4) and torch.equal(codes, sample(loaded, 2, labels=0, seed=0))
    assert isinstance(build_prior(loaded.config), MaskedCodePrior)
