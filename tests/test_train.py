import random
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from vqvae_lib import train
from vqvae_lib.config import TrainConfig
from vqvae_lib.metrics import reconstruction_validator
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
    assert not first.loaded and "reached its 12 planned steps" in first.describe()
    assert again.loaded and "loaded from its checkpoint" in again.describe()
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
    assert {"meta", "train_config", "planned_steps", "model", "optimizer", "step", "train_seconds", "history",
            "sampler", "rng", "fingerprint"} <= set(ckpt)
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
    with pytest.raises(ValueError, match="junk.pt is not a vqvae_lib checkpoint") as err:
        load_checkpoint(junk)
    assert "expected a vqvae_lib checkpoint" in str(err.value) and "documentation" not in str(err.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="foreign.pt is not a vqvae_lib checkpoint"):
        load_checkpoint(foreign)
    pickled = tmp_path / "pickled.pt"                     # a pickle that would run code if it were loaded
    torch.save({"format": train.CHECKPOINT_FORMAT, "payload": Interrupt()}, pickled)
    with pytest.raises(ValueError, match=r"pickled.pt is not a vqvae_lib checkpoint \(it holds objects") as err:
        load_checkpoint(pickled)
    assert "documentation" not in str(err.value)


def test_resume_refuses_other_settings_and_names_them(tmp_path):
    path, meta = tmp_path / "run.pt", {"kind": "vqvae", "config": {"beta": 0.25, "ema_decay": 0.99}}
    fit(tiny_autoencoder(), images(), recon_loss, small_cfg(steps=4), checkpoint=path, meta=meta, progress=False)
    with pytest.raises(ValueError, match=r"run.pt was trained with other settings") as err:
        fit(tiny_autoencoder(), images(), recon_loss, small_cfg(steps=4, lr=0.02, grad_clip=0.5), checkpoint=path,
            meta={"kind": "vqvae", "config": {"beta": 0.5, "ema_decay": 0.99}}, progress=False)
    message = str(err.value)
    assert "model beta: 0.25 -> 0.5" in message and "training lr: 0.01 -> 0.02" in message
    assert "grad_clip: 1.0 -> 0.5" in message and "ema_decay" not in message
    again = fit(tiny_autoencoder(), images(), recon_loss, small_cfg(steps=4, eval_every=1, checkpoint_every=1),
                checkpoint=path, meta=meta, progress=False)                  # bookkeeping options may change
    assert again.step == again.start_step == 4


def test_only_a_finished_run_is_extended_and_only_when_asked(tmp_path):
    path, data = tmp_path / "run.pt", images()
    fit(tiny_autoencoder(), data, recon_loss, small_cfg(steps=5), checkpoint=path, progress=False)
    with pytest.raises(ValueError, match="budget steps=5, this run asks for steps=8: pass --extend"):
        fit(tiny_autoencoder(), data, recon_loss, small_cfg(steps=8), checkpoint=path, progress=False)
    extended = fit(tiny_autoencoder(), data, recon_loss, small_cfg(steps=8), checkpoint=path, progress=False,
                   extend=True)
    assert extended.start_step == 5 and extended.step == extended.planned_steps == 8
    assert extended.history["step"] == list(range(1, 9))
    with pytest.raises(ValueError, match="allows no step beyond"):
        fit(tiny_autoencoder(), data, recon_loss, small_cfg(steps=6), checkpoint=path, progress=False, extend=True)

    cut = tmp_path / "cut.pt"                                # stopped at step 5 of 12: not finished
    with pytest.raises(Interrupt):
        fit(tiny_autoencoder(), data, interrupted(recon_loss, 7), small_cfg(), checkpoint=cut, progress=False)
    with pytest.raises(ValueError, match="stopped at step 5 of 12: finish it"):
        fit(tiny_autoencoder(), data, recon_loss, small_cfg(steps=20), checkpoint=cut, progress=False, extend=True)


class BufferedModel(nn.Module):
    """A model whose forward pass updates a buffer, as a VQ-VAE's EMA codebook does."""

    def __init__(self):
        super().__init__()
        self.net = tiny_autoencoder()
        self.register_buffer("stats", torch.zeros(3))

    def forward(self, x):
        if self.training:
            self.stats += 1
        return self.net(x)


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_divergence_leaves_the_buffers_as_they_were_before_the_step(where):
    model = BufferedModel()

    def loss_fn(net, batch, labels):
        loss, metrics = recon_loss(net, batch, labels)
        if model.stats[0] >= 4:                              # the 4th forward pass updated the buffer, then:
            if where == "loss":
                return loss * float("nan"), metrics
            return loss + 0 * model.net[0].weight.sum() * float("inf"), metrics
        return loss, metrics

    weights = None
    with pytest.raises(TrainingDiverged, match="step 4"):
        def keep(net):
            nonlocal weights
            weights = {k: v.clone() for k, v in model.net.state_dict().items()}
            return {}
        fit(model, images(), loss_fn, small_cfg(eval_every=3, checkpoint_every=0), validate=keep, progress=False)
    assert torch.equal(model.stats, torch.full((3,), 3.0))  # the bad step's update of the buffer was undone
    for name, tensor in model.net.state_dict().items():       # and no weight moved after step 3
        assert torch.equal(tensor, weights[name]), name


@pytest.mark.parametrize("config", ["class", "plain-codebook", "reference"])
def test_divergence_rolls_back_everything_the_vqvae_step_changed(config):
    """A diverged step leaves the real VQ-VAE as it was before it: the codebook (moved by the EMA, or by a dead-code
    restart in the forward pass even where the optimizer trains it), its statistics, the usage, restart and update
    counters, and every random state a restart draws from."""
    from vqvae_lib.config import VQVAEConfig
    from vqvae_lib.vqvae import VQVAE, vqvae_loss

    model, slices = tiny_vqvae_setup()
    if config == "plain-codebook":  # the codebook loss, no EMA: the optimizer trains the codebook, restarts move it
        model = VQVAE(replace(model.config, ema=False))
    if config == "reference":       # Sonnet's debiased EMA: an integer update counter, no restarts
        model = VQVAE(replace(VQVAEConfig.reference(), hidden_channels=8, res_channels=4, n_res_blocks=1,
                              codebook_size=16, embedding_dim=4))
    seen = {"calls": 0}

    def loss_fn(net, batch, labels):
        seen["calls"] += 1
        poisoned = seen["calls"] == 6
        seen["state"] = {k: v.clone() for k, v in model.state_dict().items()}   # before this step
        seen["rng"] = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
        if poisoned and model.config.restart_dead:
            model.quantizer.usage.zero_()                      # this step restarts every code its batch leaves unused
        loss, metrics = vqvae_loss(net, batch, labels)
        if poisoned:
            seen["restarted"] = int(model.quantizer.restarts - seen["state"]["quantizer.restarts"])
        return (loss * float("nan") if poisoned else loss), metrics

    with pytest.raises(TrainingDiverged, match="step 6"):
        fit(model, slices, loss_fn, small_cfg(eval_every=0, checkpoint_every=0), progress=False)
    assert (seen["restarted"] > 0) == (config != "reference")           # the forward pass did move codes
    state = model.state_dict()
    moved = [k for k, v in seen["state"].items() if not torch.equal(v, state[k])]
    assert moved == [], f"the diverged step left these changed: {moved}"
    torch_rng, numpy_rng, python_rng = seen["rng"]
    assert torch.equal(torch.get_rng_state(), torch_rng)
    assert (np.random.get_state()[1] == numpy_rng).all() and random.getstate() == python_rng
    if config == "reference":
        assert int(model.quantizer.ema_updates) == 5                         # five good steps counted, not six


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


class FakeClock:
    """A clock the test drives: ``sleep`` moves it on, nothing else does (no wall-clock bound in a test)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_minutes_budget_becomes_a_step_count_of_training_time_only(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(train, "perf_counter", clock)

    def slow_loss(model, batch, labels):
        clock.sleep(0.02)                                             # each step takes 0.02 s of training time
        return recon_loss(model, batch, labels)

    def slow_validate(model):
        clock.sleep(0.05)                                             # ... each validation 0.05 s, not counted
        return validate_mean_output(model)

    cfg = small_cfg(steps=10**6, minutes=0.3 / 60, eval_every=1)
    result = fit(tiny_autoencoder(), images(), slow_loss, cfg, validate=slow_validate, progress=False)
    planned = int(train.PLAN_MARGIN * 0.3 / 0.02)                     # the probe timed 0.02 s per step
    assert (result.stopped, result.step, result.planned_steps) == ("minutes", planned, planned)
    assert "12 steps" in result.describe() and "0.005-minute budget ran out" in result.describe()
    assert result.train_seconds == pytest.approx(planned * 0.02)
    assert len(result.history["val_step"]) == result.step
    probe = (train.PROBE_WARMUP + train.PROBE_STEPS) * 0.02
    assert clock.now == pytest.approx(probe + result.train_seconds + 0.05 * result.step)   # validation not counted


def test_a_planned_run_is_reproduced_bit_for_bit_by_its_step_count(tmp_path, monkeypatch):
    clock = iter(np.arange(0, 1000, 0.005))                           # steady steps: the clock does not stop it
    monkeypatch.setattr(train, "perf_counter", lambda: float(next(clock)))
    budget = fit(tiny_autoencoder(), images(), recon_loss, small_cfg(steps=10**6, minutes=0.4 / 60),
                 checkpoint=tmp_path / "minutes.pt", progress=False)
    saved = load_checkpoint(tmp_path / "minutes.pt")
    assert saved["planned_steps"] == budget.step == budget.planned_steps > train.PROBE_STEPS
    steps = fit(tiny_autoencoder(), images(), recon_loss, small_cfg(steps=budget.step), progress=False)
    assert steps.history["loss"] == budget.history["loss"] and steps.history["lr"] == budget.history["lr"]
    for name, tensor in budget.model.state_dict().items():
        assert torch.equal(tensor, steps.model.state_dict()[name]), name
    assert budget.history["lr"][-1] == pytest.approx(learning_rate(small_cfg(), budget.step - 1, budget.step))


def test_the_clock_stops_a_run_that_falls_far_behind_its_plan_and_warns(monkeypatch):
    calls = {"n": 0}

    def clock():                                                      # 0.1 s a step in the probe, then 1 s
        calls["n"] += 1
        return 0.1 * min(calls["n"], 40) + max(0, calls["n"] - 40)
    monkeypatch.setattr(train, "perf_counter", clock)
    cfg = small_cfg(steps=10**6, minutes=2 / 60, eval_every=0, checkpoint_every=0)
    planned = int(train.PLAN_MARGIN * 20)                             # 20 steps of 0.1 s in 2 s, with the margin
    with pytest.warns(UserWarning, match=rf"clock stopped training at step \d of {planned} planned"):
        result = fit(tiny_autoencoder(), images(), recon_loss, cfg, progress=False)
    assert result.stopped == "clock" and result.planned_steps == planned and result.step < 10
    assert result.train_seconds >= train.CLOCK_SHARE * 2 and "budget ran out before the" in result.describe()


def test_a_run_slower_than_planned_stops_at_its_budget_as_the_first_steps_of_its_plan(monkeypatch):
    probe_calls = 2 * (train.PROBE_WARMUP + train.PROBE_STEPS)
    now = {"t": 0.0, "calls": 0}

    def clock():                                  # probe steps 0.05 s, the warm-up's 0.1 s, the steps after it 0.12 s
        now["calls"] += 1
        c = now["calls"]
        now["t"] += 0.05 if c <= probe_calls else 0.1 if c <= probe_calls + 2 * 30 else 0.12
        return now["t"]
    monkeypatch.setattr(train, "perf_counter", clock)
    cfg = small_cfg(steps=10**6, minutes=6 / 60, warmup_steps=30, eval_every=0, checkpoint_every=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                # 54 of 57 planned steps: no warning
        result = fit(tiny_autoencoder(), images(), recon_loss, cfg, progress=False)
    # planned at the warm-up's end: 30 + 0.90 * 3 / 0.1 = 57 steps (the warm-up took 2.93 s: the fake clock gave its
    # first steps the probe's 0.05 s); at 0.12 s per step the clock's 95 % of the 6 s (5.7 s) are spent after 54
    assert result.stopped == "clock" and result.planned_steps == 57 and result.step == 54
    assert 5.7 <= result.train_seconds < 5.82
    monkeypatch.undo()
    plan = fit(tiny_autoencoder(), images(), recon_loss, small_cfg(steps=57, warmup_steps=30, eval_every=0,
                                                                     checkpoint_every=0), progress=False)
    assert plan.history["lr"][:54] == result.history["lr"] and plan.history["loss"][:54] == result.history["loss"]
    assert result.history["lr"][-1] < 0.15 * cfg.lr                   # the cosine had mostly ended


def test_time_budget_anneals_the_schedule(monkeypatch):
    clock = iter(np.arange(0, 1000, 0.5))                             # each training step takes 0.5 s
    monkeypatch.setattr(train, "perf_counter", lambda: float(next(clock)))
    cfg = small_cfg(steps=10**6, minutes=5 / 60, eval_every=0, checkpoint_every=0)
    result = fit(tiny_autoencoder(), images(), recon_loss, cfg, progress=False)
    planned = int(train.PLAN_MARGIN * 10)                             # 10 steps fit, planned with the margin
    assert result.stopped == "minutes" and result.step == planned and result.train_seconds == 0.5 * planned
    assert result.history["lr"][-1] == pytest.approx(learning_rate(cfg, planned - 1, planned))
    assert result.history["lr"][-1] < 0.2 * cfg.lr                    # 8 steps: the cosine over the last 5



def test_the_plan_is_made_again_at_the_end_of_the_warm_up(monkeypatch):
    now = {"t": 0.0, "calls": 0}

    def clock():                                                      # the probe's steps take 0.05 s, the run's 0.1
        now["calls"] += 1
        now["t"] += 0.05 if now["calls"] <= 2 * (train.PROBE_WARMUP + train.PROBE_STEPS) else 0.1
        return now["t"]
    monkeypatch.setattr(train, "perf_counter", clock)
    cfg = small_cfg(steps=10**6, minutes=6 / 60, warmup_steps=30, eval_every=0, checkpoint_every=0)
    result = fit(tiny_autoencoder(), images(), recon_loss, cfg, progress=False)
    # the probe planned 0.85 * 6 / 0.05 = 102 steps: 10.2 s; after 30 steps (3 s) the rest is planned from 0.1 s
    # per step: 30 + 0.90 * 3 / 0.1 = 57 steps, 5.7 s of the 6-second budget
    assert result.stopped == "minutes" and result.planned_steps == result.step == 57
    assert result.train_seconds == pytest.approx(5.7, abs=0.1)
    monkeypatch.undo()
    again = fit(tiny_autoencoder(), images(), recon_loss, small_cfg(steps=57, warmup_steps=30, eval_every=0,
                                                                      checkpoint_every=0), progress=False)
    assert again.history["lr"] == result.history["lr"] and again.history["loss"] == result.history["loss"]
    short = small_cfg(steps=10**6, minutes=6 / 60, warmup_steps=train.REPLAN_MIN_WARMUP - 1, eval_every=0,
                      checkpoint_every=0)
    now.update(t=0.0, calls=0)
    monkeypatch.setattr(train, "perf_counter", clock)
    with pytest.warns(UserWarning, match="clock stopped training"):   # too short a warm-up to re-plan: the
        kept = fit(tiny_autoencoder(), images(), recon_loss, short, progress=False)  # probe's plan (102 steps)
    assert abs(kept.planned_steps - int(train.PLAN_MARGIN * 6 / 0.05)) <= 1        # stays; the clock stops it
    assert kept.stopped == "clock" and kept.train_seconds >= 5.7 and kept.step < 0.9 * kept.planned_steps  # 5.7 s

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
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10)
    end = train.LR_MIN_RATIO                                                   # 0.05: where the cosine ends
    rates = [learning_rate(cfg, s) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and max(rates) == rates[9]
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert learning_rate(cfg, 100) == pytest.approx(end)
    assert learning_rate(cfg, 50, total=50) == pytest.approx(end)             # the end of a 50-step run
    assert rates[:10] == [learning_rate(cfg, s, total=40) for s in range(10)]  # the warm-up ignores the total
    assert rates[10] == pytest.approx(1.0) and rates[55] == pytest.approx(end + (1 - end) * 0.5)  # cosine after it
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
    from vqvae_lib.vqvae import VQVAE, vqvae_loss

    model, slices = tiny_vqvae_setup()
    cfg = small_cfg(steps=8, checkpoint_every=3, eval_every=4)
    validate = reconstruction_validator(slices[:8])
    meta = {"kind": "vqvae", "model_config": model.config.to_dict(), "image_size": 16}
    full = fit(model, slices, vqvae_loss, cfg, checkpoint=tmp_path / "full.pt", validate=validate,
               meta=meta, fingerprint="toy", progress=False)
    assert full.step == 8 and not model.training
    assert {"recon", "perplexity", "active_codes"} <= set(full.history)
    assert full.history["val_step"] == [4, 8] and 0 < full.history["val_ssim_mean"][-1] <= 1
    assert full.history["loss"][-1] < full.history["loss"][0]

    cut = tmp_path / "cut.pt"
    with pytest.raises(Interrupt):
        fit(tiny_vqvae_setup()[0], slices, interrupted(vqvae_loss, 5), cfg, checkpoint=cut,
            validate=validate, meta=meta, fingerprint="toy", progress=False)
    ckpt = torch.load(cut, weights_only=True)
    assert ckpt["step"] == 3 and ckpt["meta"] == meta
    resumed = fit(VQVAE(model.config), slices, vqvae_loss, cfg, checkpoint=cut, validate=validate,
                  meta=meta, fingerprint="toy", progress=False)
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert resumed.history["loss"] == full.history["loss"]


def test_a_field_added_since_a_checkpoint_was_written_counts_as_its_default():
    from vqvae_lib.checkpoint import run_differences
    from vqvae_lib.config import VQVAEConfig

    new = ("ema_debias", "beta_term", "input_offset", "input_scale", "recon_divisor")
    old_config = {k: v for k, v in VQVAEConfig().to_dict().items() if k not in new}
    old_train = {k: v for k, v in TrainConfig().to_dict().items() if k != "amsgrad"}
    ckpt = {"meta": {"kind": "vqvae", "config": old_config}, "train_config": old_train}
    assert run_differences(ckpt, {"kind": "vqvae", "config": VQVAEConfig().to_dict()}, TrainConfig().to_dict()) == []
    asked = {"kind": "vqvae", "config": {**VQVAEConfig().to_dict(), "beta_term": "codebook"}}
    assert run_differences(ckpt, asked, {**TrainConfig().to_dict(), "amsgrad": True}) == [
        "model beta_term: 'commitment' -> 'codebook'", "training amsgrad: False -> True"]


def test_a_field_that_left_the_library_is_read_at_its_old_value_and_refused_at_another(tmp_path):
    from vqvae_lib.checkpoint import load_vqvae, run_differences, save_checkpoint
    from vqvae_lib.config import VQVAEConfig
    from vqvae_lib.vqvae import VQVAE

    config = VQVAEConfig(hidden_channels=8, res_channels=4, n_res_blocks=1, codebook_size=16, embedding_dim=4)
    model = VQVAE(config)
    for value, loads in ((0.0, True), (0.1, False)):    # code_noise: 0 unless its experiment was run
        old = {**config.to_dict(), "code_noise": value, "in_channels": 1}
        meta = {"kind": "vqvae", "config": old, "image_size": 16}
        path = tmp_path / f"old-{value}.pt"
        save_checkpoint({"meta": meta, "model": model.state_dict()}, path)
        ckpt = {"meta": meta, "train_config": {**TrainConfig().to_dict(), "weight_ema": 0.0}}
        asked = {"kind": "vqvae", "config": config.to_dict(), "image_size": 16}
        if loads:
            assert load_vqvae(path, torch.device("cpu")).config == config
            assert run_differences(ckpt, asked, TrainConfig().to_dict()) == []
        else:
            with pytest.raises(ValueError, match=f"{path}.*code_noise=0.1.*no longer has"):
                load_vqvae(path, torch.device("cpu"))
            assert run_differences(ckpt, asked, TrainConfig().to_dict()) == ["model code_noise: 0.1 -> None"]


def test_a_vqvae_of_the_earlier_restart_rule_loads_but_does_not_resume_and_an_old_loss_reads_as_mse(tmp_path):
    from vqvae_lib.checkpoint import load_vqvae, run_differences, save_checkpoint
    from vqvae_lib.config import VQVAEConfig
    from vqvae_lib.vqvae import VQVAE

    config = VQVAEConfig(hidden_channels=8, res_channels=4, n_res_blocks=1, codebook_size=16, embedding_dim=4)
    old = {k: v for k, v in config.to_dict().items() if k not in ("dead_share", "recon_loss")}
    meta = {"kind": "vqvae", "config": {**old, "dead_threshold": 1.0}, "image_size": 16}
    path = tmp_path / "old.pt"
    save_checkpoint({"meta": meta, "model": VQVAE(config).state_dict()}, path)
    loaded = load_vqvae(path, torch.device("cpu")).config
    assert loaded.recon_loss == "mse" and loaded.dead_share == config.dead_share   # before recon_loss: the paper's
    asked = {"kind": "vqvae", "config": {**config.to_dict(), "recon_loss": "mse"}, "image_size": 16}
    ckpt = {"meta": meta, "train_config": TrainConfig().to_dict()}
    assert run_differences(ckpt, asked, TrainConfig().to_dict()) == ["model dead_threshold: 1.0 -> None"]
    no_restarts = {**meta, "config": {**meta["config"], "restart_dead": False}}  # the rule never ran: resumable
    asked_no_restarts = {**asked, "config": {**asked["config"], "restart_dead": False}}
    assert run_differences({**ckpt, "meta": no_restarts}, asked_no_restarts, TrainConfig().to_dict()) == []
