"""The coarse-to-fine prior: coarse maps summarise blocks of codes, its likelihood is top plus bottom, the
bottom stays causal in the codes while it sees the whole coarse map, and the fast sampler reproduces the
naive one exactly (conditional, completion) under one seed; trained, saved and loaded by the pipeline."""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_imagefolder

from vqvae_lib import pipeline
from vqvae_lib.coarse import CoarseToFinePrior, build_prior
from vqvae_lib.config import PixelCNNConfig, TrainConfig, get_profile
from vqvae_lib.pixelcnn import GatedPixelCNN
from vqvae_lib.prior import evaluate_prior, prior_loss
from vqvae_lib.sampling import sample

K, D, SHAPE = 9, 4, (6, 8)


def tiny(n_labels: int = 2, coarse_codes: int = 3, seed: int = 0) -> CoarseToFinePrior:
    """float64 weights scaled up (distributions far from uniform), centres fitted on random maps."""
    torch.manual_seed(seed)
    cfg = PixelCNNConfig(channels=6, n_layers=3, kernel_size=3, codebook_size=K, n_labels=n_labels,
                         height=SHAPE[0], width=SHAPE[1], coarse_codes=coarse_codes, code_dim=D)
    model = CoarseToFinePrior(cfg).double()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
            if param.abs().sum() == 0:
                param.normal_(0, 2.0)
    return model.fit(torch.randn(K, D, dtype=torch.float64), torch.randint(K, (30, *SHAPE)), seed=seed)


def test_coarse_maps_summarise_blocks():
    model = tiny()
    assert model.coarse(torch.randint(K, (5, *SHAPE))).shape == (5, 3, 4)
    constant = torch.full((1, *SHAPE), 4)
    assert model.coarse(constant).unique().numel() == 1               # equal blocks, one coarse code
    codes = torch.randint(K, (2, *SHAPE))
    changed = codes.clone()
    changed[:, :2, :2] = (changed[:, :2, :2] + 1) % K                   # only the first block changes
    a, b = model.coarse(codes), model.coarse(changed)
    assert torch.equal(a.flatten(1)[:, 1:], b.flatten(1)[:, 1:])
    centres = model.centres.clone()
    state = torch.random.get_rng_state()
    model.fit(model.code_vectors, torch.randint(K, (30, *SHAPE), generator=torch.Generator().manual_seed(1)))
    assert torch.equal(torch.random.get_rng_state(), state)             # k-means is seeded, the global RNG kept
    assert not torch.equal(model.centres, centres)


@torch.no_grad()
def test_nll_is_top_plus_bottom_and_counts_bits_per_code():
    model = tiny()
    codes, labels = torch.randint(K, (4, *SHAPE)), torch.tensor([0, 1, 1, 0])
    coarse = model.coarse(codes)
    top = F.cross_entropy(model.top(coarse, labels), coarse, reduction="sum")
    bottom = F.cross_entropy(model.bottom(codes, labels, model.condition(coarse)), codes, reduction="sum")
    assert float(model.nll(codes, labels)) == pytest.approx(float(top + bottom))
    loss, metrics = prior_loss(model, codes, labels)
    assert float(loss) == pytest.approx(float(top + bottom) / codes.numel())
    scores = evaluate_prior(model, codes, labels, batch_size=3)
    assert scores["bits_per_code"] == pytest.approx(float(top + bottom) / codes.numel() / math.log(2))
    assert scores["bits_per_image"] == pytest.approx(scores["bits_per_code"] * SHAPE[0] * SHAPE[1])


def test_bottom_is_causal_in_the_codes_and_sees_the_whole_coarse_map():
    model = tiny()
    codes, labels = torch.randint(K, (1, *SHAPE)), torch.tensor([1])
    coarse = model.coarse(codes)
    i, j = 2, 3
    later = codes.clone()
    later[0, i, j:] = (later[0, i, j:] + 1) % K                        # (i, j) and everything after it
    later[0, i + 1:] = (later[0, i + 1:] + 2) % K
    before = model(codes, labels, coarse)[0, :, i, j]
    assert torch.allclose(model(later, labels, coarse)[0, :, i, j], before)
    other = coarse.clone()
    other[0, -1, -1] = (other[0, -1, -1] + 1) % model.config.coarse_codes   # the last coarse code, far below
    assert not torch.allclose(model(codes, labels, other)[0, :, i, j], before)


@pytest.mark.parametrize("options", [{}, {"temperature": 0.7, "top_k": 4}], ids=["plain", "top-k"])
def test_fast_sampler_equals_naive_and_is_seeded(options):
    model = tiny()
    fast = sample(model, 3, SHAPE, labels=torch.tensor([0, 1, 0]), seed=5, **options)
    assert torch.equal(fast, sample(model, 3, SHAPE, labels=torch.tensor([0, 1, 0]), seed=5, naive=True, **options))
    assert torch.equal(fast, sample(model, 3, SHAPE, labels=torch.tensor([0, 1, 0]), seed=5, **options))
    assert not torch.equal(fast, sample(model, 3, SHAPE, labels=torch.tensor([0, 1, 0]), seed=6, **options))
    assert fast.min() >= 0 and fast.max() < K


def test_completion_keeps_the_prompt_rows():
    model = tiny()
    prompt = torch.randint(K, SHAPE)
    done = sample(model, 2, labels=1, seed=0, prompt=prompt, keep_rows=3)
    assert torch.equal(done[:, :3], prompt[:3].expand(2, 3, SHAPE[1]))
    assert torch.equal(done, sample(model, 2, labels=1, seed=0, prompt=prompt, keep_rows=3, naive=True))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="coarse_factor"):
        PixelCNNConfig(coarse_factor=1)
    with pytest.raises(ValueError, match="code_dim"):
        CoarseToFinePrior(PixelCNNConfig(codebook_size=K, height=4, width=4, coarse_codes=3))
    with pytest.raises(ValueError, match="not divisible by coarse_factor"):
        CoarseToFinePrior(PixelCNNConfig(codebook_size=K, height=5, width=4, coarse_codes=3, code_dim=D))
    assert isinstance(build_prior(PixelCNNConfig(codebook_size=K)), GatedPixelCNN)
    with pytest.raises(ValueError, match="conditioned on a map"):
        tiny().bottom(torch.randint(K, (1, *SHAPE)), torch.tensor([0]))


def test_pipeline_trains_saves_and_loads_a_coarse_prior(tmp_path, monkeypatch):
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path / "home"))
    source = str(tiny_imagefolder(tmp_path / "slices", (16, 16), (4, 3), textured=True))
    quick = TrainConfig(batch_size=4, steps=3, warmup_steps=0, eval_every=0, checkpoint_every=0)
    smoke = get_profile("smoke")
    profile = smoke.replace(image_size=16, vqvae_train=quick, prior_train=quick,
                            prior=PixelCNNConfig(channels=8, n_layers=2, kernel_size=3, coarse_codes=3))
    model, result = pipeline.load_or_train_prior(profile, source, progress=False)
    run = pipeline.default_run_dir(profile, source)
    assert isinstance(model, CoarseToFinePrior) and result.step == 3
    assert model.config.code_dim == smoke.vqvae.embedding_dim
    assert model.config.codebook_size == smoke.vqvae.codebook_size
    vqvae = pipeline.load_vqvae(run / "vqvae.pt", torch.device("cpu"))
    assert torch.equal(model.code_vectors, vqvae.quantizer.codebook)
    loaded = pipeline.load_prior(run / "prior.pt", torch.device("cpu"), vqvae_path=run / "vqvae.pt")
    assert isinstance(loaded, CoarseToFinePrior) and loaded.latent_shape == (4, 4)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    codes = sample(loaded, 2, labels=0, seed=0)
    assert codes.shape == (2, 4, 4)
