"""Fixed values of tiny seeded models, as model libraries keep them: a change that alters what the library
computes (initialisation, the training step, the schedule, the quantizer, the sampler) shows up here, on
purpose or not. Update the numbers only for an intended change, and say so in the commit. CPU, fp32, one
thread; tolerances allow for floating-point differences between machines, not for other behaviour."""
import pytest
import torch

from vqvae_lib.config import PixelCNNConfig, TrainConfig, VQVAEConfig
from vqvae_lib.pixelcnn import GatedPixelCNN
from vqvae_lib.prior import prior_loss
from vqvae_lib.sampling import sample
from vqvae_lib.train import fit
from vqvae_lib.vqvae import VQVAE, vqvae_loss

STEPS = TrainConfig(batch_size=8, steps=5, lr=1e-2, warmup_steps=2, eval_every=0, checkpoint_every=0, seed=0)
# the values below: learning rates 0.005, 0.01 (warm-up), then the cosine over the last three steps: 0.01, 0.0076,
# 0.0029


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def stripes() -> torch.Tensor:
    """24 images of 16 x 16 uint8 (no randomness): sine stripes at 24 phases."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    phases = torch.linspace(0, 3, 24)[:, None, None, None]
    return (127.5 * (1 + torch.sin(4 * x + phases) * torch.cos(3 * y))).round().to(torch.uint8)


def test_vqvae_losses_of_the_first_five_steps():
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(hidden_channels=8, res_channels=4, n_res_blocks=1, downsample=4, codebook_size=16,
                              embedding_dim=4))
    losses = fit(model, stripes(), vqvae_loss, STEPS, progress=False).history["loss"]
    # the class profile's l1+grad loss; no code is dead yet after five steps
    assert losses == pytest.approx([0.814233, 0.797960, 0.777285, 0.757814, 0.744997], rel=1e-4)


def test_prior_losses_and_samples_of_a_tiny_conditional_prior_with_position():
    torch.manual_seed(0)
    prior = GatedPixelCNN(PixelCNNConfig(channels=8, n_layers=3, kernel_size=3, codebook_size=16, n_labels=2,
                                         height=4, width=4))
    maps = torch.randint(0, 16, (24, 4, 4), generator=torch.Generator().manual_seed(1))
    result = fit(prior, maps, prior_loss, STEPS, labels=torch.arange(24) % 2, progress=False)
    assert result.history["loss"] == pytest.approx([2.748313, 2.827897, 2.802199, 2.744002, 2.802122], rel=1e-4)
    codes = sample(prior, 2, (4, 4), labels=torch.tensor([0, 1]), seed=0)
    # float32 uniforms (the same on every device, with float64 or without)
    assert codes.flatten().tolist() == [7, 12, 1, 1, 4, 9, 7, 14, 6, 9, 5, 6, 0, 2, 4, 7,
                                        10, 12, 2, 4, 10, 14, 6, 13, 6, 8, 15, 0, 2, 5, 4, 14]
