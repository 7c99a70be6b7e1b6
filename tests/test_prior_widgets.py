"""The raster-scan player builds headless and responds to its controls; prior figures are Figures."""
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from vqvae_lib import plotting_codebook, plotting_prior, sampling
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
    assert player.support.disabled and player.settings()["support"] == "none"   # the prior has no code support


def test_player_support_restricts_the_sample_and_the_shown_distribution():
    prior, vqvae = tiny_models()
    prior.code_support = torch.zeros(2, 4, 4, 8, dtype=torch.bool)
    prior.code_support[..., 2:4] = True                                      # codes 2 and 3 only, everywhere
    player = RasterScanPlayer(prior, vqvae)
    assert not player.support.disabled and player.support.options == ("none", "position", "label", "depth")
    free = player.current_sample()[0]
    assert not set(free.unique().tolist()) <= {2, 3}
    shown = player.image.value
    player.support.value = "label"
    assert player.image.value != shown
    assert set(player.current_sample()[0].unique().tolist()) <= {2, 3}
    codes, _ = player.current_sample()
    probs = sampling.next_code_distribution(prior, codes, (1, 1), labels=0, support=prior.code_support)
    assert probs[[0, 1, 4, 5, 6, 7]].sum() == 0 and probs.sum() == pytest.approx(1.0)


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
    assert [ax.get_title().split("\n")[0] for ax in figs[0].axes[:2]] == ["a", "b"]  # then the colourbar
    assert "4 positions influence (1, 1)" in figs[0].axes[0].get_title()    # the first row of the field
    lines = {tuple(line.get_ydata()) for ax in figs[1].axes for line in ax.lines}
    assert (5.0, 4.0, 3.5) in lines and (3.6,) in lines                    # training and validation curves
    assert sum(len(ax.get_images()) for ax in figs[2].axes) == 3           # one image per sample


def test_player_keeps_the_position_the_notebook_sets():
    prior, vqvae = tiny_models(n_labels=2)
    player = RasterScanPlayer(prior, vqvae)
    assert player.play.value == player.position.value                 # Play starts where the slider is
    player.position.value = 5
    assert player.play.value == 5                                     # and follows the slider set from Python
    assert player.link.source == (player.position, "value")           # the browser copies slider -> Play
    assert player.link.target == (player.play, "value")


def test_receptive_fields_share_one_labelled_colour_scale():
    weak, strong = torch.zeros(4, 4), torch.zeros(4, 4)
    weak[0] = 1e-3
    strong[:2] = 10.0
    fig = plotting_prior.receptive_fields({"a": weak, "b": strong}, (1, 1))
    assert len(fig.axes) == 3 and fig.axes[2].get_ylabel() == "log10 |d logits / d input|"  # two maps, one bar
    limits = [ax.get_images()[0].get_clim() for ax in fig.axes[:2]]
    assert limits[0] == limits[1] and np.allclose(limits[0], (-3, 1))  # both panels on the same scale


def test_sample_rows_puts_column_titles_over_the_top_row():
    rows = {"T = 0.5": torch.rand(3, 1, 8, 8), "T = 1": torch.rand(3, 1, 8, 8)}
    fig = plotting_prior.sample_rows(rows, col_titles=["sample 1", "sample 2", "sample 3"])
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["sample 1", "sample 2", "sample 3"]
    assert [ax.get_title() for ax in axes[1]] == ["", "", ""]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["T = 0.5", "T = 1"]  # row labels unchanged
    assert all(ax.get_title() == "" for ax in plotting_prior.sample_rows(rows).axes)
    with pytest.raises(ValueError, match="2 column titles for 3 columns"):
        plotting_prior.sample_rows(rows, col_titles=["a", "b"])


def test_raster_strip_veils_exactly_the_cells_not_sampled_yet():
    image = torch.linspace(0, 0.5, 64).reshape(1, 8, 8)              # no pixel at the veil's grey
    positions = [0, 5, 16]
    fig = plotting_prior.raster_strip(image, (4, 4), positions)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["0 of 16 sampled", "5 of 16 sampled", "16 of 16 sampled"]
    picture = image[0].numpy()
    for ax, p in zip(fig.axes, positions):
        shown = np.asarray(ax.get_images()[0].get_array())
        for r in range(4):
            for c in range(4):
                block, want = shown[2 * r:2 * r + 2, 2 * c:2 * c + 2], picture[2 * r:2 * r + 2, 2 * c:2 * c + 2]
                assert np.allclose(block, want if 4 * r + c < p else plotting_prior.VEIL), (p, r, c)
    with pytest.raises(ValueError):
        plotting_prior.raster_strip(image, (4, 4), [17])


def test_raster_step_colours_codes_by_their_order():
    codes = torch.tensor([[0, 1], [2, 3]])
    order = np.array([0.5, 1.0, 0.0, 0.25])
    fig = plotting_prior.raster_step(codes, 3, torch.full((4,), 0.25), 0, order=order)
    layers = fig.axes[0].get_images()                                  # grey background, then the codes
    assert np.allclose(np.ma.filled(layers[1].get_array(), np.nan), [[0.5, 1.0], [0.0, np.nan]], equal_nan=True)
    assert any("principal direction" in ax.get_ylabel() for ax in fig.axes)  # the colourbar says what colour means


def test_player_strip_shows_the_current_sample():
    prior, vqvae = tiny_models()
    player = RasterScanPlayer(prior, vqvae)
    assert np.allclose(player.order, plotting_codebook.code_order(vqvae.quantizer.codebook))
    fig = player.strip()
    assert [ax.get_title() for ax in fig.axes] == [f"{k} of 16 sampled" for k in (0, 4, 8, 12, 16)]
    _, image = player.current_sample()
    assert np.allclose(fig.axes[-1].get_images()[0].get_array(), plotting_prior._gray(image))  # all sampled
    assert len(player.strip([3, 16]).axes) == 2
