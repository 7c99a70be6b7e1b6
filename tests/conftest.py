"""Shared test data: a tiny two-class ImageFolder tree, with caches and runs kept in tmp."""
from pathlib import Path

import numpy as np
from PIL import Image


def tiny_imagefolder(root: Path, shape: tuple[int, int], margin: tuple[int, int], textured: bool) -> Path:
    """Two class folders of 10 slices each: a bright rectangle on black; class "b" textured if asked."""
    rng = np.random.default_rng(0)
    (mh, mw), (h, w) = margin, shape
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(10):
            image = np.zeros(shape, np.uint8)
            inside = (h - 2 * mh, w - 2 * mw)
            image[mh:-mh, mw:-mw] = rng.integers(0, 250, inside) if textured and cls == "b" else rng.integers(60, 250)
            Image.fromarray(image).save(root / cls / f"{i}.png")
    return root


def pipeline_prior_roundtrip(tmp_path: Path, monkeypatch, prior_cfg):
    """Train a tiny VQ-VAE and the prior ``prior_cfg`` describes for 3 steps each through ``pipeline`` on a
    tiny image folder, load the prior back from its checkpoint and check that every weight survived:
    -> (trained model, its FitResult, the loaded model)."""
    import torch

    from vqvae_lib import pipeline
    from vqvae_lib.config import TrainConfig, get_profile

    monkeypatch.setenv("VQVAE_HOME", str(tmp_path / "home"))
    source = str(tiny_imagefolder(tmp_path / "slices", (16, 16), (4, 3), textured=True))
    quick = TrainConfig(batch_size=4, steps=3, warmup_steps=0, eval_every=0, checkpoint_every=0)
    profile = get_profile("smoke").replace(image_size=16, vqvae_train=quick, prior_train=quick, prior=prior_cfg)
    model, result = pipeline.load_or_train_prior(profile, source, progress=False)
    run = pipeline.default_run_dir(profile, source)
    loaded = pipeline.load_prior(run / "prior.pt", torch.device("cpu"), vqvae_path=run / "vqvae.pt")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    return model, result, loaded


def push_weights(model, scale: float):
    """``model`` with every weight moved by Gaussian noise of std ``scale`` (in place, no grad): distributions far
    from the near-uniform ones a fresh init gives, so that tests of sampling and reach can tell cases apart."""
    import torch

    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * scale)
    return model

