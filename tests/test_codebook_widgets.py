"""Codebook figures return Figures; the codebook widgets build headless and respond to their controls."""
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from vqvae_lib import codebook as cb
from vqvae_lib import plotting_codebook as pc
from vqvae_lib.config import VQVAEConfig
from vqvae_lib.data import SliceDataset
from vqvae_lib.plotting import figure_png
from vqvae_lib.quantizer import flatten
from vqvae_lib.vqvae import VQVAE
from vqvae_lib.widgets import PROMPT, CodebookSizeLab, CodeExplorer, LatentPainter

K = 16


@pytest.fixture(scope="module")
def model() -> VQVAE:
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(hidden_channels=16, res_channels=8, n_res_blocks=1, codebook_size=K,
                              embedding_dim=8)).eval()
    with torch.no_grad():  # codes from 10 encoder outputs: some codes used, 6 or more dead
        model.quantizer.init_codebook(flatten(model.encode(torch.rand(2, 1, 32, 32)))[:10])
    return model


@pytest.fixture(scope="module")
def data() -> SliceDataset:
    images = torch.randint(0, 256, (4, 1, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    return SliceDataset(images=images, paths=[""] * 4, source="t", layout="oasis", split="train", fingerprint="f",
                        subjects=["a", "a", "b", "b"], slice_index=torch.tensor([0, 1, 0, 1]))


def test_codebook_figures(model, data):
    stats = cb.codebook_stats(model, data)
    encoded = cb.encode_with_distances(model, data)
    patches = cb.code_patches(encoded.indices, data, 0, 4, distances=encoded.distances)
    projection, near = cb.pca_2d(model.quantizer.codebook), cb.nearest_codes(model.quantizer.codebook, 0, 4)
    history = {"step": [1, 2, 3], "perplexity": [2.0, 3.0, 4.0], "active_codes": [3, 4, 5]}
    figs = [
        pc.usage_histogram(stats), pc.usage_histogram(stats, order="id", highlight=3, log=False, title="t"),
        pc.usage_by_group(stats, top=8),
        pc.code_map(encoded.indices[0], K, data.images[0]), pc.code_map(encoded.indices[0], K),
        pc.code_occurrences(data.images[:2], encoded.indices[:2], 0, titles=["x", "y"]),
        pc.code_patches_grid(patches, 0, distances=encoded.distances), pc.code_patches_grid([], 0),
        pc.codebook_pca(projection, stats.counts, 0, near), pc.codebook_pca(projection, stats.counts),
        pc.code_report(stats, 0, projection, near, data.images[:2], encoded.indices[:2], patches),
        pc.edit_comparison(data.images[0], torch.rand(1, 32, 32), torch.rand(1, 32, 32), encoded.indices[0], K,
                           region=(0, 10, 5, 20), title="t"),
        pc.edit_comparison(data.images[0], torch.rand(1, 32, 32)),
        pc.codebook_size_comparison({"a": stats, "b": history}), pc.codebook_size_comparison({"a": stats}, log=False),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    assert len(figs[3].axes) == 3 and len(figs[4].axes) == 2                # slice, code map, its colourbar
    assert all(figure_png(figs[i]).startswith(b"\x89PNG") for i in (2, 8, 10))
    where = np.asarray(figs[2].axes[0].get_images()[0].get_array())      # (groups, codes): a code's uses over groups
    assert np.allclose(where.sum(0)[where.sum(0) > 0], 100.0)
    with pytest.raises(ValueError, match="no groups"):
        pc.usage_by_group(cb.stats_from_indices(encoded.indices, K))


def test_code_order_ranks_codes_along_the_first_principal_direction():
    g = torch.Generator().manual_seed(0)
    t = torch.randperm(12, generator=g).float()                       # each code's place along (1, 2, 0)
    codebook = t[:, None] * torch.tensor([1.0, 2.0, 0.0]) + 0.01 * torch.randn(12, 3, generator=g)
    order = pc.code_order(codebook)
    assert order.shape == (12,)
    assert np.allclose(order, t.numpy() / 11)                          # rank along PC 1 / (K - 1)
    assert np.allclose(np.sort(order), np.linspace(0, 1, 12))         # a permutation of the ranks
    assert np.allclose(pc.code_order(-codebook), 1 - order)            # PC 1's sign is fixed: order reversed


def test_code_order_gives_identical_codes_one_value():
    codebook = torch.tensor([[0.0, 0.0], [3.0, 1.0], [1.0, 0.5], [3.0, 1.0], [2.0, 0.7], [0.0, 0.0]])
    order = pc.code_order(codebook)
    assert order[1] == order[3] and order[0] == order[5]
    assert order.min() == 0 and order.max() == 1
    assert np.allclose(order, [0, 1, 1 / 3, 1, 2 / 3, 0])            # 4 distinct codes, ranks 0..3 / 3
    assert (pc.code_order(torch.ones(3, 2)) == 0).all()               # one distinct code


def test_code_maps_are_coloured_by_code_order():
    indices = torch.tensor([[0, 1], [2, 3]])
    order = np.array([0.5, 1.0, 0.0, 0.25])
    fig = pc.code_map(indices, 4, order=order)
    image = fig.axes[0].get_images()[0]
    assert np.allclose(image.get_array(), [[0.5, 1.0], [0.0, 0.25]])
    assert image.get_cmap().name == pc.CODE_CMAP and image.get_clim() == (0, 1)
    assert len(fig.axes) == 2 and "principal direction" in fig.axes[1].get_ylabel()  # map and its colourbar
    by_id = pc.code_map(indices, 4).axes[0].get_images()[0]           # without an order: id / (K - 1)
    assert np.allclose(by_id.get_array(), [[0, 1 / 3], [2 / 3, 1]])
    fig = pc.edit_comparison(torch.rand(1, 8, 8), torch.rand(1, 8, 8), edited_indices=indices, codebook_size=4,
                             order=order)
    assert np.allclose(_panel(fig, "edited codes").get_images()[0].get_array(), [[0.5, 1.0], [0.0, 0.25]])


def _panel(fig, title: str):
    return next(ax for ax in fig.axes if ax.get_title() == title)


def test_hatching_is_mentioned_only_when_a_bar_is_hatched(model, data):
    stats = cb.codebook_stats(model, data)
    history = {"step": [1, 2, 3], "perplexity": [2.0, 3.0, 4.0], "active_codes": [3, 4, 5]}
    for results, hatched in (({"a": stats}, False), ({"a": stats, "b": history}, True)):
        middle = pc.codebook_size_comparison(results).axes[1]
        assert any(bar.get_hatch() for bar in middle.patches) == hatched
        assert ("hatched" in middle.get_title()) == hatched


def test_code_explorer_responds(model, data):
    explorer = CodeExplorer(model, data, n_slices=2, n_patches=4)
    assert explorer.stats.counts.sum() == 4 * 8 * 8 and len(explorer.stats.dead) > 0
    first = explorer.image.value
    used = int(explorer.stats.counts.argsort()[-2])  # the second most used code
    explorer.code.value = used
    assert explorer.image.value != first and f"code {used}:" in explorer.info.value
    shown = explorer.image.value
    dead = int(explorer.stats.dead[0])
    explorer.pick.value = dead  # the "dead codes" entries of the list
    assert explorer.code.value == dead and explorer.pick.value == PROMPT
    assert explorer.pick.label.startswith("most used")                 # the prompt shows, never a blank box
    assert explorer.image.value != shown and "dead" in explorer.info.value
    assert explorer.slices_with(dead) == []
    assert len(CodeExplorer(model, data.images, limit=2).images) == 2


def test_latent_painter_responds(model, data):
    painter = LatentPainter(model, data)
    assert np.allclose(painter.order, pc.code_order(model.quantizer.codebook))
    codes_panel = _panel(painter.figure(), "edited codes").get_images()[0]
    assert np.allclose(codes_panel.get_array(), painter.order[painter.edited_indices().numpy()])
    assert painter.source.value == int(painter.encoded(0)[0].flatten().mode().values)  # most common code
    first = painter.image.value
    vectors = model.quantizer.codebook
    painter.target.value = next(k for k in range(K) if k != painter.source.value  # a code that looks different
                                and not torch.equal(vectors[k], vectors[painter.target.value]))
    edited = painter.edited_indices()
    assert (edited != painter.encoded(0)[0]).any() and painter.image.value != first
    shown = painter.image.value
    painter.mode.value = painter.MODES[1]
    assert painter.source.disabled and not painter.rows.disabled
    painter.rows.value, painter.cols.value = (0, 1), (2, 2)  # grid rows 0..1, column 2
    changed = (painter.edited_indices() != painter.encoded(0)[0]).nonzero()
    assert set(changed[:, 1].tolist()) <= {2} and set(changed[:, 0].tolist()) <= {0, 1}
    assert painter.image.value != shown
    shown = painter.image.value
    painter.slice.value = 2
    assert painter.image.value != shown and set(painter.source.options) != set()
    assert painter.source.value in painter.encoded(2)[0].flatten().tolist()
    assert painter.footprint(painter.encoded(2)[0]) is None  # nothing changed, no footprint


def test_latent_painter_says_why_nothing_changed(model, data):
    painter = LatentPainter(model, data)
    painter.target.value = painter.source.value                      # a code replaced by itself
    assert "replaced by itself" in painter.figure().get_suptitle()
    painter.target.value = next(k for k in range(K) if k != painter.source.value)
    assert "replaced by itself" not in painter.figure().get_suptitle()


def test_codebook_size_lab_switches_between_results(model, data):
    maps = cb.encode_split(model, data)
    results = {"K=16": cb.stats_from_indices(maps, K), "K=4": cb.stats_from_indices(maps % 4, 4),
               "history only": {"step": [1, 2], "perplexity": [1.0, 2.0], "active_codes": [1, 2]}}
    lab = CodebookSizeLab(results, histories={"K=16": results["history only"]})
    assert lab.selected == list(results)
    shown = lab.image.value
    lab.toggles["K=4"].value = False
    assert lab.selected == ["K=16", "history only"] and lab.image.value != shown
    shown = lab.image.value
    lab.log_scale.value = False
    assert lab.image.value != shown
    for toggle in lab.toggles.values():
        toggle.value = False
    assert "at least one" in lab.figure().texts[0].get_text()
    with pytest.raises(ValueError):
        CodebookSizeLab({})
