"""VQ-VAE model: shapes, input checks, gradients, index round trips, and overfitting one batch."""
from dataclasses import replace

import pytest
import torch

from vqvae_lib.config import VQVAEConfig
from vqvae_lib.vqvae import VQVAE

TINY = dict(hidden_channels=16, res_channels=8, n_res_blocks=1, codebook_size=16, embedding_dim=4)


def tiny(**changes) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(**{**TINY, **changes}))


def images(n=4, size=32, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def shapes(n=8, size=32, seed=0):
    """n images of one bright square or disc each, at random places and sizes, in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = torch.zeros(n, 1, size, size)
    for i in range(n):
        cy, cx, r = (torch.randint(8, size - 8, (2,), generator=gen).tolist()
                     + [int(torch.randint(3, 7, (1,), generator=gen))])
        if i % 2:
            mask = ((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r
        else:
            mask = ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r)
        out[i, 0][mask] = 0.5 + 0.5 * torch.rand((), generator=gen)
    return out


@pytest.mark.parametrize("downsample", [2, 4, 8])
def test_shapes(downsample):
    model = tiny(downsample=downsample)
    x = images(2, 32)
    h = 32 // downsample
    out = model(x)
    assert model.encode(x).shape == (2, 4, h, h)
    assert out.reconstruction.shape == x.shape
    assert out.indices.shape == (2, h, h) and out.indices.dtype == torch.long
    assert out.vq.quantized.shape == (2, 4, h, h)
    assert out.loss.ndim == 0 and out.recon_loss.ndim == 0
    assert model.latent_shape(32) == (h, h)
    assert model.latent_shape((32, 64)) == (h, 2 * h)
    assert len(model.encoder.down) == len(model.decoder.up) == downsample.bit_length() - 1
    rect = torch.rand(1, 1, 32, 64)
    assert model(rect).reconstruction.shape == rect.shape


@pytest.mark.parametrize("shape", [(2, 1, 30, 32), (2, 1, 32, 34), (2, 3, 32, 32), (1, 32, 32)])
def test_bad_input_shape_raises(shape):
    model = tiny(downsample=4)
    with pytest.raises(ValueError, match=r"divisible by downsample=4") as err:
        model(torch.rand(*shape))
    assert str(tuple(shape)) in str(err.value)
    with pytest.raises(ValueError, match="divisible"):
        model.latent_shape(30)


def test_residual_blocks_are_distinct_modules():
    model = tiny(n_res_blocks=3)
    for stack in (model.encoder.res, model.decoder.res):
        assert len({id(block) for block in stack}) == 3
        weights = [block.conv1.weight for block in stack]
        assert not torch.equal(weights[0], weights[1])


def test_straight_through_gradient_reaches_the_encoder():
    model = tiny()
    out = model(images())
    out.recon_loss.backward()  # the reconstruction only: no VQ loss terms
    for name, p in model.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_decode_indices_matches_forward_in_eval():
    model = tiny()
    x = images()
    model.train()
    model(x)  # data init of the codebook
    model.eval()
    with torch.no_grad():
        out = model(x)
        indices = model.encode_indices(x)
        assert torch.equal(indices, out.indices)
        assert torch.allclose(model.decode_indices(indices), out.reconstruction, atol=1e-5)



def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(before, model):
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k


def test_eval_mode_never_changes_the_state():
    model = tiny().eval()
    model.quantizer.usage.zero_()  # every code would be restarted in training
    before = state(model)
    with torch.no_grad():
        for seed in range(3):
            model(images(seed=seed))
    assert_same_state(before, model)


def test_encode_indices_has_no_side_effects_in_training_mode():
    model = tiny().train()
    model.quantizer.usage.zero_()
    before = state(model)
    model.encode_indices(images())
    assert_same_state(before, model)


def test_training_mode_updates_the_codebook():
    model = tiny().train()
    before = model.quantizer.codebook.detach().clone()
    model(images())
    assert bool(model.quantizer.initialized)
    assert not torch.equal(before, model.quantizer.codebook)


@pytest.mark.parametrize("ema", [True, False])
def test_overfits_one_batch(ema):
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(hidden_channels=32, res_channels=16, n_res_blocks=1, downsample=4,
                              codebook_size=32, embedding_dim=8, ema=ema, recon_loss="mse"))  # falls tenfold
    x = shapes()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        out = model(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.recon_loss.item())
    model.eval()
    with torch.no_grad():
        final = model(x).recon_loss.item()
    assert final < losses[0] / 10


def test_baselines_see_their_own_input_range_and_divide_by_the_variance():
    torch.manual_seed(0)
    cfg = VQVAEConfig.misha().with_data_variance(0.05)
    cfg = replace(cfg, hidden_channels=8, res_channels=4, codebook_size=8, embedding_dim=4)
    model = VQVAE(cfg)
    x = torch.rand(2, 1, 16, 16)
    assert torch.allclose(model.to_model(x), 2 * x - 1) and torch.allclose(model.to_image(model.to_model(x)), x)
    out = model(x)
    y = model.decoder(model.quantize(model.encode(x)).quantized)
    assert torch.allclose(out.reconstruction, (y + 1) / 2)                 # images come back in [0, 1] space
    assert torch.allclose(out.recon_loss, ((y - (2 * x - 1)) ** 2).mean() / 0.05)
    assert torch.allclose(model.decode_indices(out.indices), out.reconstruction, atol=1e-6)


def test_reconstruction_loss_values_on_a_known_edge():
    from vqvae_lib.vqvae import reconstruction_loss

    target = torch.zeros(1, 1, 4, 4)
    y = torch.zeros(1, 1, 4, 4)
    y[..., 2:] = 1.0                                        # a vertical edge the target does not have
    assert torch.allclose(reconstruction_loss(y, target, "mse"), torch.tensor(0.5))
    # L1 of the pixels 0.5; horizontal differences: one jump of 1 per row, 4 of 12 -> 1/3; vertical ones all 0
    assert torch.allclose(reconstruction_loss(y, target, "l1+grad"), torch.tensor(0.5 + 1 / 3))
    assert reconstruction_loss(target, target, "l1+grad") == 0
    with pytest.raises(ValueError, match="l1\\+grad"):
        reconstruction_loss(y, target, "l2")
    with pytest.raises(ValueError, match="recon_loss"):
        VQVAEConfig(recon_loss="l2")


def test_l1_grad_loss_prefers_a_sharp_edge_that_mse_lets_blur():
    """A step edge, predicted either sharp but with 0.7 of its contrast, or blurred over three pixels: the
    squared error ranks the blur better, the L1 of pixels and differences ranks the sharp edge better."""
    from vqvae_lib.vqvae import reconstruction_loss

    target = torch.zeros(1, 1, 8, 8)
    target[..., 4:] = 1.0
    sharp = target * 0.7 + 0.15                              # the edge in place, contrast 0.7 instead of 1
    blurred = target.clone()
    blurred[..., 3], blurred[..., 4] = 0.25, 0.75            # the right contrast, the edge spread out
    assert reconstruction_loss(blurred, target, "mse") < reconstruction_loss(sharp, target, "mse")
    assert reconstruction_loss(sharp, target, "l1+grad") < reconstruction_loss(blurred, target, "l1+grad")


def test_forward_uses_the_configured_reconstruction_loss():
    from vqvae_lib.vqvae import reconstruction_loss

    model = tiny(recon_loss="l1+grad")
    x = images()
    out = model(x)
    y = model.decoder(model.quantize(model.encode(x)).quantized)
    assert torch.allclose(out.recon_loss, reconstruction_loss(y, x, "l1+grad"))
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())
