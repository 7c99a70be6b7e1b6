import random
import time

import numpy as np
import pytest
import torch
from torch import nn

from vqvae_lib import train
from vqvae_lib.config import TrainConfig
from vqvae_lib.train import (
    BatchSampler,
    TrainingDiverged,
    checkpoint_fingerprint,
    fit,
    learning_rate,
    load_checkpoint,
)


def tiny_autoencoder(seed: int = 0, width: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU(), nn.Dropout(0.2),
        nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1), nn.Sigmoid(),
    )


def images(n: int = 20, size: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)


def recon_loss(model, batch, labels):
    """Uses torch (dropout), NumPy and Python randomness, so resume must restore all three."""
    x = batch.float() / 255
    jitter = 1 + 0.01 * random.random() + 0.01 * float(np.random.rand())
    loss = jitter * (model(x) - x).pow(2).mean()
    return loss, {"mse": loss.detach()}


class Interrupt(Exception):
    pass


def interrupted(loss_fn, at_call: int):
    calls = {"n": 0}

    def wrapped(model, batch, labels):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise Interrupt
        return loss_fn(model, batch, labels)
    return wrapped


def poisoned(loss_fn, from_call: int, value: float):
    calls = {"n": 0}

    def wrapped(model, batch, labels):
        calls["n"] += 1
        loss, metrics = loss_fn(model, batch, labels)
        return (loss * value if calls["n"] >= from_call else loss), metrics
    return wrapped


def small_cfg(**changes) -> TrainConfig:
    base = dict(batch_size=8, steps=12, lr=1e-2, warmup_steps=3, eval_every=4, checkpoint_every=5, seed=3)
    return TrainConfig(**{**base, **changes})


def validate_mean_output(model):
    model.eval()
    with torch.no_grad():
        return {"mean": float(model(images(4, seed=9).float() / 255).mean())}


def test_fit_reduces_loss_on_a_toy_regression():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.01 * torch.randn(256)
    data = torch.cat([x, y[:, None]], dim=1)             # (N, 5): inputs and target in one tensor
    model = nn.Linear(4, 1)

    def loss_fn(model, batch, labels):
        return (model(batch[:, :4]).squeeze(1) - batch[:, 4]).pow(2).mean(), {}

    result = fit(model, data, loss_fn, TrainConfig(batch_size=32, steps=150, lr=0.05, warmup_steps=5,
                                                   eval_every=0, checkpoint_every=0), progress=False)
    losses = result.history["loss"]
    assert result.step == 150 and result.stopped == "steps" and result.checkpoint is None
    assert np.mean(losses[-10:]) < 0.01 * np.mean(losses[:10])
    assert not model.training


def test_resume_after_interruption_is_bit_exact(tmp_path):
    data, cfg = images(), small_cfg()                       # 2 batches per epoch: permutations renew
    full = fit(tiny_autoencoder(), data, recon_loss, cfg, checkpoint=tmp_path / "full.pt",
               validate=validate_mean_output, progress=False)

    path = tmp_path / "cut.pt"
    with pytest.raises(Interrupt):                          # killed during step 8: step 5's checkpoint stays
        fit(tiny_autoencoder(), data, interrupted(recon_loss, 8), cfg, checkpoint=path,
            validate=validate_mean_output, progress=False)
    assert load_checkpoint(path)["step"] == 5
    torch.manual_seed(123)                                  # disturb every global random state
    random.seed(123)
    np.random.seed(123)
    resumed = fit(tiny_autoencoder(seed=99), data, recon_loss, cfg, checkpoint=path,
                  validate=validate_mean_output, progress=False)

    assert resumed.start_step == 5 and resumed.step == full.step == 12
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    for key in ("step", "loss", "lr", "mse", "val_step", "val_mean"):
        assert resumed.history[key] == full.history[key], key


def test_finished_checkpoint_is_loaded_without_training(tmp_path):
    data, cfg, path = images(), small_cfg(), tmp_path / "run.pt"
    first = fit(tiny_autoencoder(), data, recon_loss, cfg, checkpoint=path, progress=False)
    written = path.read_bytes()
    again = fit(tiny_autoencoder(seed=5), data, interrupted(recon_loss, 1), cfg, checkpoint=path,
                progress=False)                              # loss_fn would raise if it were called
    assert again.start_step == again.step == 12 and again.stopped == "steps"
    assert again.history == first.history
    assert path.read_bytes() == written
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name])


def test_fingerprint_mismatch_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    fit(tiny_autoencoder(), images(), recon_loss, small_cfg(steps=2), checkpoint=path,
        fingerprint="slices-a", progress=False)
    with pytest.raises(ValueError, match="slices-a") as err:
        fit(tiny_autoencoder(), images(), recon_loss, small_cfg(steps=4), checkpoint=path,
            fingerprint="slices-b", progress=False)
    assert str(path) in str(err.value) and "slices-b" in str(err.value)


def test_model_mismatch_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    fit(tiny_autoencoder(), images(), recon_loss, small_cfg(steps=2), checkpoint=path, progress=False)
    with pytest.raises(ValueError, match="does not fit this model"):
        fit(tiny_autoencoder(width=6), images(), recon_loss, small_cfg(steps=4), checkpoint=path,
            progress=False)


def test_checkpoint_contents_load_with_weights_only(tmp_path):
    path = tmp_path / "run.pt"
    meta = {"kind": "vqvae", "model_config": {"codebook_size": 8, "ema": True}, "image_size": 8}
    fit(tiny_autoencoder(), images(), recon_loss, small_cfg(), checkpoint=path, meta=meta,
        fingerprint="abc", progress=False)
    ckpt = torch.load(path, weights_only=True)
    assert {"meta", "train_config", "model", "optimizer", "step", "train_seconds", "history", "sampler",
            "rng", "fingerprint"} <= set(ckpt)
    assert ckpt["meta"] == meta and ckpt["fingerprint"] == "abc" and ckpt["step"] == 12
    assert ckpt["train_config"] == small_cfg().to_dict()
    assert set(ckpt["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert load_checkpoint(path)["step"] == 12
    fp = checkpoint_fingerprint(path)
    assert len(fp) == 16 and fp == checkpoint_fingerprint(path)
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]      # atomic writes leave no temp files


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="foreign.pt"):
        load_checkpoint(foreign)


def test_nan_loss_raises_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    with pytest.raises(TrainingDiverged) as err:
        fit(tiny_autoencoder(), images(), poisoned(recon_loss, 7, float("nan")), small_cfg(), checkpoint=path,
            progress=False)
    message = str(err.value)
    assert "step 7" in message and "nan" in message and str(path) in message and "kept" in message
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 5
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_exploding_loss_raises():
    cfg = small_cfg(steps=40, checkpoint_every=0, eval_every=0)
    with pytest.raises(TrainingDiverged, match="step 31.*median"):
        fit(tiny_autoencoder(), images(), poisoned(recon_loss, 31, 1e6), cfg, progress=False)


def test_minutes_budget_counts_training_time_only():
    def slow_loss(model, batch, labels):
        time.sleep(0.02)
        return recon_loss(model, batch, labels)

    def slow_validate(model):
        time.sleep(0.05)
        return validate_mean_output(model)

    cfg = small_cfg(steps=10**6, minutes=0.3 / 60, eval_every=1)
    start = time.perf_counter()
    result = fit(tiny_autoencoder(), images(), slow_loss, cfg, validate=slow_validate, progress=False)
    wall = time.perf_counter() - start
    assert result.stopped == "minutes" and 1 <= result.step <= 16     # each step sleeps 0.02 s
    assert result.train_seconds >= 0.3
    assert len(result.history["val_step"]) == result.step
    assert wall >= result.train_seconds + 0.05 * result.step          # validation time was not counted


def test_time_budget_anneals_the_schedule(monkeypatch):
    clock = iter(np.arange(0, 1000, 0.5))                             # each training step takes 0.5 s
    monkeypatch.setattr(train, "perf_counter", lambda: float(next(clock)))
    cfg = small_cfg(steps=10**6, minutes=5 / 60, eval_every=0, checkpoint_every=0)
    result = fit(tiny_autoencoder(), images(), recon_loss, cfg, progress=False)
    assert result.stopped == "minutes" and result.step == 10 and result.train_seconds == 5.0
    assert result.history["lr"][-1] == pytest.approx(learning_rate(cfg, 9, progress=0.9))
    assert result.history["lr"][-1] < 0.1 * cfg.lr


def test_history_lengths_are_consistent():
    cfg = small_cfg(steps=10, eval_every=4)
    result = fit(tiny_autoencoder(), images(), recon_loss, cfg, validate=validate_mean_output, progress=False)
    history = result.history
    assert {len(history[k]) for k in ("step", "loss", "lr", "seconds", "mse")} == {10}
    assert history["step"] == list(range(1, 11))
    assert history["val_step"] == [4, 8, 10] and len(history["val_mean"]) == 3
    assert history["seconds"] == sorted(history["seconds"])


def test_labels_travel_with_their_batch():
    data = torch.arange(30)
    seen = []

    def loss_fn(model, batch, labels):
        seen.append(torch.equal(labels, 2 * batch))
        return model(batch.float()[:, None]).pow(2).mean(), {}

    fit(nn.Linear(1, 1), data, loss_fn, small_cfg(steps=6), labels=2 * data, progress=False)
    assert seen == [True] * 6


def test_learning_rate_warms_up_then_decays():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, lr_min_ratio=0.1)
    rates = [learning_rate(cfg, s) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and max(rates) == rates[9]
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert learning_rate(cfg, 100) == pytest.approx(0.1)
    assert learning_rate(cfg, 50, progress=1.0) == pytest.approx(0.1)
    constant = TrainConfig(steps=100, lr=1.0, warmup_steps=10, schedule="constant")
    assert learning_rate(constant, 80) == 1.0


def test_sampler_draws_each_epoch_without_replacement():
    sampler = BatchSampler(10, 4, seed=0)
    epoch = torch.cat([sampler.next_indices(), sampler.next_indices()])
    assert len(set(epoch.tolist())) == 8                       # the tail (2 items) is dropped
    state = sampler.state_dict()
    ahead = [sampler.next_indices() for _ in range(3)]
    sampler.load_state_dict(state)
    assert all(torch.equal(a, sampler.next_indices()) for a in ahead)


def tiny_vqvae_setup(seed: int = 0):
    from vqvae_lib.config import VQVAEConfig
    from vqvae_lib.vqvae import VQVAE

    torch.manual_seed(seed)
    cfg = VQVAEConfig(hidden_channels=8, res_channels=4, n_res_blocks=1, downsample=4, codebook_size=16,
                      embedding_dim=4)
    y, x = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    phases = torch.linspace(0, 3, 24)[:, None, None, None]
    slices = (127.5 * (1 + torch.sin(4 * x + phases) * torch.cos(3 * y))).round().to(torch.uint8)
    return VQVAE(cfg), slices                                    # slices: (24, 1, 16, 16) uint8


def test_vqvae_trains_with_fit_and_resumes_exactly(tmp_path):
    from vqvae_lib.vqvae import VQVAE

    model, slices = tiny_vqvae_setup()
    cfg = small_cfg(steps=8, checkpoint_every=3, eval_every=4)
    validate = train.reconstruction_validator(slices[:8])
    meta = {"kind": "vqvae", "model_config": model.config.to_dict(), "image_size": 16}
    full = fit(model, slices, train.vqvae_loss, cfg, checkpoint=tmp_path / "full.pt", validate=validate,
               meta=meta, fingerprint="toy", progress=False)
    assert full.step == 8 and not model.training
    assert {"recon", "perplexity", "active_codes"} <= set(full.history)
    assert full.history["val_step"] == [4, 8] and 0 < full.history["val_ssim_mean"][-1] <= 1
    assert full.history["loss"][-1] < full.history["loss"][0]

    cut = tmp_path / "cut.pt"
    with pytest.raises(Interrupt):
        fit(tiny_vqvae_setup()[0], slices, interrupted(train.vqvae_loss, 5), cfg, checkpoint=cut,
            validate=validate, meta=meta, fingerprint="toy", progress=False)
    ckpt = torch.load(cut, weights_only=True)
    assert ckpt["step"] == 3 and ckpt["meta"] == meta
    resumed = fit(VQVAE(model.config), slices, train.vqvae_loss, cfg, checkpoint=cut, validate=validate,
                  meta=meta, fingerprint="toy", progress=False)
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert resumed.history["loss"] == full.history["loss"]
