"""The raster-scan player builds headless and responds to its controls; prior figures are Figures."""
import torch
from matplotlib.figure import Figure

from vqvae_lib import plotting_prior
from vqvae_lib.config import PixelCNNConfig, VQVAEConfig
from vqvae_lib.pixelcnn import GatedPixelCNN
from vqvae_lib.vqvae import VQVAE
from vqvae_lib.widgets import RasterScanPlayer


def tiny_models(n_labels=2):
    torch.manual_seed(0)
    vqvae = VQVAE(VQVAEConfig(hidden_channels=8, res_channels=4, n_res_blocks=1, codebook_size=8,
                              embedding_dim=4, codebook_init="random")).eval()
    prior = GatedPixelCNN(PixelCNNConfig(channels=8, n_layers=2, kernel_size=3, codebook_size=8, n_labels=n_labels))
    prior.latent_shape = (4, 4)
    prior.label_names = ["low", "high"][:n_labels]
    return prior.eval(), vqvae


def test_player_responds_to_every_control():
    prior, vqvae = tiny_models()
    player = RasterScanPlayer(prior, vqvae)
    shown = player.image.value
    assert bytes(shown).startswith(b"\x89PNG")
    for control, value in ((player.position, 3), (player.temperature, 0.5), (player.top_k, 2),
                           (player.seed, 9), (player.label, 1)):
        control.value = value
        assert player.image.value != shown, control.description
        shown = player.image.value
    assert len(player._samples) == 5  # one sample per setting, reused while only the position moves
    player.position.value = 0
    assert len(player._samples) == 5


def test_player_for_an_unconditional_prior():
    prior, vqvae = tiny_models(n_labels=0)
    player = RasterScanPlayer(prior, vqvae)
    assert player.label.disabled and player.settings()["labels"] is None


def test_prior_figures():
    field = torch.zeros(4, 4)
    field[:1] = 1.0
    figs = [plotting_prior.receptive_fields({"a": field, "b": field}, (1, 1)),
            plotting_prior.prior_curves({"step": [1, 2, 3], "bits_per_code": [5.0, 4.0, 3.5], "val_step": [3],
                                         "val_bits_per_code": [3.6]}, {"uniform": 9.0}),
            plotting_prior.sample_rows({"T = 1": torch.rand(3, 1, 8, 8)}),
            plotting_prior.completions(torch.rand(2, 1, 8, 8), 2, 2, [torch.rand(2, 1, 8, 8)]),
            plotting_prior.raster_step(torch.zeros(4, 4, dtype=torch.long), 5, torch.full((8,), 1 / 8), 0,
                                       torch.rand(1, 8, 8), 8)]
    assert all(isinstance(f, Figure) for f in figs)
