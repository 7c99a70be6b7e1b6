"""PixelCNN priors: causality and receptive fields through gradients, the blind spot of the plain model,
conditioning, and bits-per-code arithmetic of the losses and baselines."""
import math

import pytest
import torch

from vqvae_lib.config import PixelCNNConfig
from vqvae_lib.pixelcnn import GatedPixelCNN, MaskedConv2d, MaskedPixelCNN, receptive_field
from vqvae_lib.prior import IndependentPrior, evaluate_prior, prior_loss, uniform_bits

SHAPE = (5, 6)  # not square: a transposed index would show


def tiny(model_cls=GatedPixelCNN, seed: int = 0, **changes) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = PixelCNNConfig(**{**dict(channels=6, n_layers=3, kernel_size=3, codebook_size=5), **changes})
    return model_cls(cfg).double()


def later_or_here(position, shape) -> torch.Tensor:
    """(h, w) bool: True at ``position`` and at every position after it in raster order."""
    h, w = shape
    order = torch.arange(h * w).view(h, w)
    return order >= position[0] * w + position[1]


def positions(shape):
    return [(i, j) for i in range(shape[0]) for j in range(shape[1])]


@pytest.mark.parametrize("model_cls, n_layers", [(MaskedPixelCNN, 1), (MaskedPixelCNN, 3), (GatedPixelCNN, 1),
                                                 (GatedPixelCNN, 3)])
def test_no_position_sees_itself_or_the_future(model_cls, n_layers):
    """Mask A alone, mask B stacked on A, and the gated stacks: zero gradient at and after the position."""
    model = tiny(model_cls, n_layers=n_layers)
    for position in positions(SHAPE):
        field = receptive_field(model, position, SHAPE, n_inputs=2)
        assert field[later_or_here(position, SHAPE)].abs().max() == 0, position
        if position != (0, 0):
            assert field[~later_or_here(position, SHAPE)].sum() > 0, position


def test_position_biases_keep_the_model_causal_and_tell_rows_apart():
    model = tiny(n_layers=3, height=SHAPE[0], width=SHAPE[1])
    with torch.no_grad():
        for layer in model.layers:
            layer.row_bias.normal_()
            layer.col_bias.normal_()
    for position in positions(SHAPE):
        field = receptive_field(model, position, SHAPE, n_inputs=2)
        assert field[later_or_here(position, SHAPE)].abs().max() == 0, position
    codes = torch.zeros(1, *SHAPE, dtype=torch.long)                   # the same code everywhere:
    logits = model(codes)[0]                                            # (K, h, w)
    assert not torch.allclose(logits[:, -1, 2:], logits[:, -2, 2:])     # the last row differs from the one above
    assert tiny(height=SHAPE[0], width=SHAPE[1]).layers[0].row_bias.abs().sum() == 0  # they start at zero
    with pytest.raises(ValueError, match="built for"):
        model(torch.zeros(1, SHAPE[0] + 1, SHAPE[1], dtype=torch.long))


def test_conditional_gated_stacks_are_causal_too():
    model = tiny(n_layers=3, n_labels=3)
    labels = torch.tensor([2, 0])
    for position in positions(SHAPE):
        field = receptive_field(model, position, SHAPE, labels=labels, n_inputs=2)
        assert field[later_or_here(position, SHAPE)].abs().max() == 0, position


def test_gated_model_has_no_blind_spot():
    """With enough layers every earlier position influences every prediction."""
    model = tiny(n_layers=6)
    for position in positions(SHAPE):
        field = receptive_field(model, position, SHAPE, n_inputs=2)
        assert (field[~later_or_here(position, SHAPE)] > 0).all(), position


def test_plain_masked_pixelcnn_has_a_blind_spot():
    """(i - 1, j + 2) lies inside the plain model's field (it sees (i - 2, j + 2) and (i - 1, j + 1)) but
    never reaches the prediction at (i, j); the gated model with the same depth sees it."""
    i, j = 3, 1
    plain = receptive_field(tiny(MaskedPixelCNN, n_layers=3), (i, j), SHAPE)
    gated = receptive_field(tiny(GatedPixelCNN, n_layers=3), (i, j), SHAPE)
    assert plain[i - 2, j + 2] > 0 and plain[i - 1, j + 1] > 0
    assert plain[i - 1, j + 2] == 0 and plain[i - 1, j + 3] == 0
    assert gated[i - 1, j + 2] > 0 and gated[i - 1, j + 3] > 0


def test_masked_conv_masks():
    a, b = MaskedConv2d(1, 1, 3, "A").mask, MaskedConv2d(1, 1, 3, "B").mask
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, "C")


def test_shapes_and_input_checks():
    model = tiny(channels=4, codebook_size=7)
    codes = torch.randint(0, 7, (2, *SHAPE))
    assert model(codes).shape == (2, 7, *SHAPE)
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        model(codes + 7)
    with pytest.raises(ValueError, match="long"):
        model(codes.int())
    with pytest.raises(ValueError, match="kernel_size"):
        PixelCNNConfig(kernel_size=4)


def test_labels_change_the_output_and_are_required():
    model = tiny(n_labels=3)
    codes = torch.randint(0, 5, (2, *SHAPE))
    same = model(codes, torch.tensor([1, 1]))
    assert not torch.allclose(model(codes, torch.tensor([0, 0])), same)
    assert torch.equal(model(codes, torch.tensor([1, 1])), same)
    with pytest.raises(ValueError, match="conditional"):
        model(codes)
    with pytest.raises(ValueError, match="unconditional"):
        tiny()(codes, torch.tensor([0, 1]))


class ConstantLogits(torch.nn.Module):
    """A 'model' whose logits are fixed: (K,) -> every position."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.as_tensor(logits, dtype=torch.float64))

    def forward(self, codes, labels=None):
        return self.logits[None, :, None, None].expand(len(codes), -1, *codes.shape[1:])


def test_uniform_logits_cost_log2_k_bits():
    K, codes = 8, torch.randint(0, 8, (3, 4, 5))
    loss, metrics = prior_loss(ConstantLogits(torch.zeros(K)), codes)
    assert loss.item() == pytest.approx(math.log(K))
    assert metrics["bits_per_code"].item() == pytest.approx(3.0)
    scores = evaluate_prior(ConstantLogits(torch.zeros(K)), codes, batch_size=2)
    assert scores == pytest.approx({"bits_per_code": 3.0, "bits_per_image": 60.0})
    assert uniform_bits(K, (4, 5)) == pytest.approx(scores)


def test_known_distribution_costs_its_cross_entropy():
    probs = torch.tensor([0.5, 0.25, 0.125, 0.125], dtype=torch.float64)
    codes = torch.tensor([[[0, 1], [2, 3]]])              # -log2 p: 1, 2, 3, 3 -> 2.25 bits on average
    scores = evaluate_prior(ConstantLogits(probs.log()), codes)
    assert scores["bits_per_code"] == pytest.approx(2.25) and scores["bits_per_image"] == pytest.approx(9.0)
    assert IndependentPrior(probs).evaluate(codes)["bits_per_code"] == pytest.approx(2.25)


def test_independent_prior_uses_add_one_smoothing():
    train = torch.tensor([[[0, 0], [0, 1]]])               # counts 3, 1, 0, 0 -> +1: 4, 2, 1, 1 of 8
    prior = IndependentPrior.fit(train, codebook_size=4)
    assert prior.probs.tolist() == [0.5, 0.25, 0.125, 0.125]
    held_out = torch.tensor([[[3, 3], [2, 0]]])             # 3 + 3 + 3 + 1 bits
    assert prior.evaluate(held_out) == pytest.approx({"bits_per_code": 2.5, "bits_per_image": 10.0})
    draws = prior.sample(400, (2, 2), seed=0)
    assert draws.shape == (400, 2, 2) and torch.equal(draws, prior.sample(400, (2, 2), seed=0))
    share = torch.bincount(draws.flatten(), minlength=4).double() / draws.numel()
    assert share.tolist() == pytest.approx(prior.probs.tolist(), abs=0.03)


def test_every_profile_has_a_prior_and_its_training_budget():
    from vqvae_lib.config import get_profile

    smoke, klass, full = (get_profile(name) for name in ("smoke", "class", "full"))
    for profile in (smoke, klass, full):
        assert isinstance(profile.prior, PixelCNNConfig) and profile.prior_train.steps >= 1
    assert smoke.prior.channels * smoke.prior.n_layers < klass.prior.channels * klass.prior.n_layers
    assert smoke.prior_train.steps <= 100 and klass.vqvae_train.minutes + klass.prior_train.minutes <= 7
