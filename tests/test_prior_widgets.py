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
    assert [ax.get_title().split("\n")[0] for ax in figs[0].axes] == ["a", "b"]
    assert "4 positions influence (1, 1)" in figs[0].axes[0].get_title()    # the first row of the field
    lines = {tuple(line.get_ydata()) for ax in figs[1].axes for line in ax.lines}
    assert (5.0, 4.0, 3.5) in lines and (3.6,) in lines                    # training and validation curves
    assert sum(len(ax.get_images()) for ax in figs[2].axes) == 3           # one image per sample


def test_sample_quality_comparison_draws_each_variant_and_the_real_ceiling():
    from vqvae_lib.plotting_prior import QUALITY_PANELS, sample_quality_comparison

    real = {"nn_ssim_mean": 0.8, "nn_ssim_share_above_0.6": 1.0, "pairwise_ssim": 0.5, "two_sample_accuracy": 0.5}
    records = [{"variant": "a", "samples": {**real, "nn_ssim_mean": 0.4}, "real": real},
               {"variant": "b", "samples": {**real, "nn_ssim_mean": 0.6}, "real": real}]
    fig = sample_quality_comparison(records, title="t")
    axes = fig.axes
    assert len(axes) == len(QUALITY_PANELS)
    heights = [patch.get_height() for patch in axes[0].patches]
    assert heights == [0.4, 0.6]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["a", "b"]
    dashed = [line.get_ydata()[0] for line in axes[0].lines if line.get_linestyle() == "--"]
    assert dashed == [0.8]


def test_player_keeps_the_position_the_notebook_sets():
    prior, vqvae = tiny_models(n_labels=2)
    player = RasterScanPlayer(prior, vqvae)
    assert player.play.value == player.position.value                 # Play starts where the slider is
    player.position.value = 5
    assert player.play.value == 5                                     # and follows the slider set from Python
    assert player.link.source == (player.position, "value")           # the browser copies slider -> Play
    assert player.link.target == (player.play, "value")
