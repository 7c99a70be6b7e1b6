"""One step-based training loop for the VQ-VAE and the PixelCNN prior: schedule, checkpoints, resume.

``fit`` draws batches ``data[idx]`` from epoch-wise permutations of a dedicated generator, takes AdamW
steps with warmup + cosine decay and gradient clipping, and stops after a step count fixed before the first
step. It writes a checkpoint every ``cfg.checkpoint_every`` steps and at the end; given an existing checkpoint
it resumes exactly where that one stopped: an interrupted run that is resumed produces the same weights as an
uninterrupted one, bit for bit (on the same device).

Budgets: ``cfg.steps``, or a time budget ``cfg.minutes`` (or both: whichever allows fewer steps). A time
budget is turned into a step count at the start: a short timing probe (``plan_steps``: a few steps on a
throwaway copy of the model, every random state restored afterwards) measures the seconds per step here; with a
warm-up of at least ``REPLAN_MIN_WARMUP`` steps the count is planned once more at the warm-up's end, from the
run's own timed steps (``_Run.replan``). The planned count is stored in the checkpoint. The learning rate
follows the steps, never the clock (the warm-up's rates do not depend on the count; the cosine decay starts after
it), so a run is reproducible: rerunning with ``steps=`` the planned count gives the same weights bit for bit. A plan
is an estimate (on a 2-core CPU the steps after the warm-up ran up to 10 % slower or faster than the warm-up's), so
the clock has the last word: a run whose training time reaches ``CLOCK_SHARE`` (95 %) of its budget stops there
(``stopped == "clock"``; the rest of the budget is for its last validation and checkpoint), usually a few per cent
short of its plan, where the cosine has all but ended; it is the first ``step`` steps of
the ``steps=`` planned-count run (same rates, same weights). Only the training steps (forward, backward, clipping,
optimizer step) count as training time; data loading, start-up, validation and checkpoint writes do not.

Resume refuses what it cannot honour: a checkpoint of other data (fingerprint), of another model or with
other training settings stops with an error naming each differing field and its two values. Only a finished
run's budget may grow, and only when asked (``extend=True``, the CLI's ``--extend``).

Divergence: a non-finite loss or gradient norm, or a loss above ``DIVERGENCE_FACTOR`` times the median loss
of the first ``DIVERGENCE_WINDOW`` steps, stops training with ``TrainingDiverged`` before the update is
applied: what the forward pass changed (a VQ-VAE's codebook, its statistics and counters, the random states) is
restored to its value before the step and the optimizer has not moved the weights; the last checkpoint on disk is
left as it was.

Under ``torchrun`` (see ``distributed.py``) the same loop runs data-parallel: every rank draws its own
share of each epoch (``DistributedSampler``), gradients are averaged by ``DistributedDataParallel``, the
logged loss is the mean over ranks, the planned step count is rank 0's, so every rank takes the same
learning rate and stops at the same step. Rank 0 alone validates, shows progress and writes checkpoints;
if that fails there, every rank stops with the same error at once (``distributed.on_main``). Every rank
resumes from the same checkpoint. ``cfg.batch_size`` is per process.

Speed options (``TrainConfig``): ``precision`` (bf16 autocast; the quantizer stays fp32),
``channels_last`` and ``compile``; ``benchmarks/throughput.py`` measures them.
"""
from __future__ import annotations

import copy
import math
import random
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import (
    BUDGET_FIELDS,
    CHECKPOINT_FORMAT,  # noqa: F401  (re-exported: older code imports it from here)
    budget_of,
    checkpoint_fingerprint,  # noqa: F401
    load_checkpoint,
    run_differences,
    save_checkpoint,
)
from .config import TrainConfig
from .utils import AUTOCAST_DEVICES, exact_dtype, set_seed

LossFn = Callable[[nn.Module, Tensor, Tensor | None], tuple[Tensor, dict]]  # (model, batch, labels)
PROBE_STEPS = 12           # a time budget's timing probe: this many timed steps ...
PROBE_WARMUP = 3           # ... after this many untimed ones (allocation, codebook initialisation)
PLAN_MARGIN = 0.85         # plan for this share of the budget: a sustained run is slower than its probe
REPLAN_MARGIN = 0.90       # at the end of the warm-up, plan again for this share of the time left (later steps ran
                           # up to 10 % slower than the warm-up's: the clock then stops the run at its budget) ...
REPLAN_MIN_WARMUP = 30     # ... when the warm-up has at least this many steps to time
CLOCK_SHARE = 0.95         # the clock stops a run whose training time reaches this share of its budget (the rest
                           # is for the end of the run: its last validation and checkpoint) ...
CLOCK_WARN_SHARE = 0.9     # ... and warns when that comes before this share of its planned steps
DIVERGENCE_WINDOW = 20     # the first steps whose median loss is the reference ...
DIVERGENCE_FACTOR = 1e3    # ... that a later loss may not exceed by this factor
RESERVED = ("step", "loss", "lr", "seconds")
LR_MIN_RATIO = 0.05        # the cosine schedule decays the learning rate to this share of cfg.lr


class TrainingDiverged(RuntimeError):
    """The loss (or gradient) became non-finite or exploded; training stopped before the update."""


@dataclass
class FitResult:
    model: nn.Module
    history: dict[str, list]   # step, loss, lr, seconds, each loss_fn metric; val_step, val_<name>
    step: int                  # optimizer steps taken in total (including those before a resume)
    train_seconds: float       # training time in total (including before a resume)
    stopped: str               # "steps" | "minutes" (the planned steps of a time budget) | "clock" (budget spent first)
    checkpoint: Path | None
    start_step: int = 0        # the step this call started from (the checkpoint's step on resume)
    planned_steps: int = 0     # the step count the run was planned for (cfg.steps, or from the time budget)
    minutes: float | None = None   # the run's time budget, if it had one

    @property
    def loaded(self) -> bool:
        """True when this call trained nothing: the checkpoint had already finished."""
        return self.start_step == self.step

    def describe(self) -> str:
        """In words: how long it trained and why it stopped, e.g. "2084 steps in 2.6 min; stopped because the
        3-minute budget ran out (steps planned by timing the first steps)"."""
        if self.stopped == "minutes":
            why = (f"the {self.minutes:g}-minute budget ran out (steps planned by timing the first steps)"
                   if self.minutes is not None else "its time budget ran out")
        elif self.stopped == "clock":
            why = (f"its {self.minutes:g}-minute budget ran out before the {self.planned_steps} planned steps "
                   "(the steps ran slower than timed)" if self.minutes is not None else "its time budget ran out")
        else:
            why = f"it reached its {self.planned_steps} planned steps"
        done = f"{self.step} steps in {self.train_seconds / 60:.1f} min of training; stopped because {why}"
        return done + ("; loaded from its checkpoint, trained earlier" if self.loaded else "")


def learning_rate(cfg: TrainConfig, step: int, total: int | None = None) -> float:
    """The learning rate of step ``step`` (0-based) of a run of ``total`` steps (default ``cfg.steps``): a linear
    warm-up over ``cfg.warmup_steps``, then a cosine decay over the steps after the warm-up, ending at
    ``LR_MIN_RATIO * lr``. The warm-up does not depend on ``total``: a time budget's step count may be planned
    again at its end (``fit``) and the run stays the run that ``steps=`` its final count gives."""
    total = cfg.steps if total is None else total
    start = cfg.warmup_steps if total > cfg.warmup_steps else 0      # the cosine starts after the warm-up
    progress = min(max(step - start, 0) / max(total - start, 1), 1.0)
    warmup = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.schedule == "constant":
        return cfg.lr * warmup
    decay = LR_MIN_RATIO + (1 - LR_MIN_RATIO) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * warmup * decay


class BatchSampler:
    """This process's batches of indices, without replacement: torch's ``DistributedSampler`` (a permutation
    seeded by ``seed + epoch``; each of ``world_size`` ranks takes its own disjoint share, a plain process
    all of it) cut into batches, the tail of each epoch dropped. Its state is just (epoch, position)."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if n < world_size:
            raise ValueError(f"{n} training examples cannot be shared by {world_size} processes")
        self.sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.n = len(self.sampler)  # this rank's share of an epoch
        self.batch_size = min(batch_size, self.n)
        self.epoch, self.position = 0, 0
        self.order = self._permutation()

    def _permutation(self) -> Tensor:
        self.sampler.set_epoch(self.epoch)
        return torch.tensor(list(self.sampler), dtype=torch.long)  # (n,)

    def next_indices(self) -> Tensor:
        if self.position + self.batch_size > self.n:
            self.epoch, self.position = self.epoch + 1, 0
            self.order = self._permutation()
        idx = self.order[self.position:self.position + self.batch_size]  # (B,)
        self.position += self.batch_size
        return idx

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        if "epoch" not in state:
            raise ValueError("its batch-sampler state predates the DistributedSampler (no epoch); it was "
                             "written by an older vqvae_lib")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.order = self._permutation()


def _rng_state() -> dict:
    """Every global random state, as tensors and lists (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), int(pos), int(has_gauss), gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _all_finite(model: nn.Module) -> bool:
    tensors = [*model.parameters(), *model.buffers()]
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def _divergence(loss: float, history: dict) -> str | None:
    """Why ``loss`` counts as divergence, or None when it is fine."""
    if not math.isfinite(loss):
        return "the loss is not finite"
    first = history.get("loss", [])[:DIVERGENCE_WINDOW]
    if len(first) == DIVERGENCE_WINDOW and loss > DIVERGENCE_FACTOR * float(np.median(first)):
        return f"above {DIVERGENCE_FACTOR:g} x the median loss of the first {DIVERGENCE_WINDOW} steps"
    return None


def _scalar(value) -> float:
    return float(value.detach()) if isinstance(value, Tensor) else float(value)


def _mean_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """The mean of each value over all ranks (the values themselves in a single process)."""
    if not distributed.is_distributed():
        return values
    return distributed.all_reduce_mean_(torch.tensor(values, dtype=exact_dtype(device), device=device)).tolist()


def _main_value(value: float, device: torch.device) -> float:
    """Rank 0's value on every rank (the value itself in a single process)."""
    if not distributed.is_distributed():
        return value
    return float(distributed.broadcast_(torch.tensor([value], dtype=exact_dtype(device), device=device)))


def compile_in_place(model: nn.Module) -> None:
    """``torch.compile`` a model's heavy parts in place (its state_dict keeps its names): a VQ-VAE's encoder
    and decoder, any other model whole. The quantizer stays eager: it branches on data and talks to the
    other ranks."""
    parts = [model.encoder, model.decoder] if hasattr(model, "quantizer") else [model]
    for part in parts:
        part.compile()


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``cfg.precision`` on ``device``: bf16, or None for plain fp32.

    "auto" means bf16 on a CUDA GPU that supports it and fp32 everywhere else.
    """
    if cfg.precision == "fp32":
        return None
    if cfg.precision == "bf16":
        if device.type not in AUTOCAST_DEVICES:
            raise ValueError(f"precision='bf16' (autocast) runs on {' or '.join(AUTOCAST_DEVICES)}, not on "
                             f"{device.type}: train in fp32 there (precision='fp32' or 'auto')")
        return torch.bfloat16
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if cuda_bf16 else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """bf16 autocast on ``device`` when ``dtype`` is set, else no context at all: ``torch.autocast`` is only ever
    entered on the devices it supports everywhere the package runs (``AUTOCAST_DEVICES``; not MPS)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _record(history: dict, values: dict) -> None:
    for name, value in values.items():
        history.setdefault(name, []).append(value)


@dataclass
class _Run:
    """The state of one training run: everything a checkpoint holds."""
    model: nn.Module
    cfg: TrainConfig
    sampler: BatchSampler
    path: Path | None
    fingerprint: str
    meta: dict
    step: int = 0
    seconds: float = 0.0
    planned: int = 0           # the step count this run trains to
    history: dict = field(default_factory=dict)
    saved_step: int | None = None
    validated_step: int | None = None   # known on every rank (the scores live in rank 0's history)

    def __post_init__(self):
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=self.cfg.lr, weight_decay=0.0,
                                           amsgrad=self.cfg.amsgrad)
        self.device = next(self.model.parameters()).device
        self.net = self.model  # what the loss function calls: the model, or its DDP / compiled wrapper
        self.dtype = autocast_dtype(self.cfg, self.device)

    def prepare(self) -> None:
        """Memory layout, DistributedDataParallel, torch.compile: after resuming, before the first step."""
        if self.cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.cfg.compile:
            compile_in_place(self.model)
        self.net = distributed.wrap(self.model)
        self.net.train()

    def stop_reason(self) -> str | None:
        if self.step >= self.planned:
            return finished_reason(self.cfg, self.planned)
        if self.cfg.minutes is not None and self.seconds >= CLOCK_SHARE * self.cfg.minutes * 60:
            return "clock"
        return None

    def lr(self) -> float:
        return learning_rate(self.cfg, self.step, self.planned)

    def replan(self) -> bool:
        """At the end of the warm-up of a time budget, plan the step count again from the training steps timed
        so far (steps ``PROBE_WARMUP`` to the warm-up's end), a better measure than the probe's few steps on a
        copy: on a 2-core CPU the probe's plan alone missed 4-minute prior runs by up to a fifth either way. The
        warm-up's learning rates do not depend on the plan, so the run is
        still the one that ``steps=`` its final count gives. Returns True when it planned again."""
        w = self.cfg.warmup_steps
        if self.cfg.minutes is None or w < REPLAN_MIN_WARMUP or self.step != w or self.planned <= w:
            return False
        seconds = dict(zip(self.history.get("step", []), self.history.get("seconds", [])))
        if PROBE_WARMUP not in seconds or w not in seconds:
            return False
        per_step = max((seconds[w] - seconds[PROBE_WARMUP]) / (w - PROBE_WARMUP), 1e-9)
        left = self.cfg.minutes * 60 - self.seconds
        fits = int(_main_value(REPLAN_MARGIN * max(left, 0.0) / per_step, self.device))
        self.planned = min(self.cfg.steps, w + max(fits, 0))
        return True

    def kept(self) -> str:
        if self.path is None:
            return "no checkpoint is kept (checkpoint=None)"
        if self.saved_step is None:
            return f"no checkpoint had been written yet to {self.path}"
        return f"the last good checkpoint {self.path} (step {self.saved_step}) was kept"

    def train_step(self, loss_fn: LossFn, batch: Tensor, labels: Tensor | None, lr: float):
        """One AdamW step -> (loss, metrics), both averaged over ranks; raises TrainingDiverged before a
        bad update (on every rank alike), with the model's buffers as they were before the step."""
        if self.cfg.channels_last and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        before = _snapshot_state(self.model)
        with autocast(self.device, self.dtype):
            loss, metrics = loss_fn(self.net, batch, labels)
        values = _mean_over_ranks([_scalar(loss), *(_scalar(v) for v in metrics.values())], self.device)
        value, metrics = values[0], dict(zip(metrics, values[1:]))
        if clash := set(metrics) & set(RESERVED):
            raise ValueError(f"loss_fn metrics may not be named {sorted(clash)}: history uses them")
        if (reason := _divergence(value, self.history)) is not None:
            _restore_state(before)
            raise TrainingDiverged(f"training diverged at step {self.step + 1}: loss {value:.6g} ({reason}); "
                                   f"{self.kept()}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
        if not math.isfinite(grad_norm):
            _restore_state(before)
            raise TrainingDiverged(f"training diverged at step {self.step + 1}: loss {value:.6g}, gradient "
                                   f"norm {grad_norm} is not finite; {self.kept()}")
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        return value, metrics

    def validate(self, validate: Callable[[nn.Module], dict]) -> None:
        """Score the model on rank 0; if that fails, every rank raises the same error (``on_main``)."""
        def score():
            scores = {f"val_{name}": float(v) for name, v in validate(self.model).items()}
            _record(self.history, {"val_step": self.step, **scores})
        distributed.on_main(score)
        self.validated_step = self.step
        self.net.train()

    def save(self) -> None:
        """Write the checkpoint atomically on rank 0 (the weights are the same on every rank); if that fails
        there (non-finite weights, a full disk), every rank raises the same error at once."""
        def write():
            if not _all_finite(self.model):
                raise TrainingDiverged(f"non-finite weights at step {self.step}; {self.kept()}")
            save_checkpoint({
                "meta": self.meta, "train_config": self.cfg.to_dict(), "planned_steps": self.planned,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "step": self.step, "train_seconds": self.seconds, "history": self.history,
                "sampler": self.sampler.state_dict(), "rng": _rng_state(), "fingerprint": self.fingerprint,
            }, self.path)
        distributed.on_main(write)
        self.saved_step = self.step

    def resume(self, device: torch.device, extend: bool) -> bool:
        """Restore everything ``save`` wrote; refuse a checkpoint of other data, another model or other
        settings. Returns True when the budget was extended (the step count must be planned again)."""
        ckpt = load_checkpoint(self.path, map_location=device)
        if ckpt["fingerprint"] != self.fingerprint:
            raise ValueError(f"checkpoint {self.path} was trained on data with fingerprint "
                             f"{ckpt['fingerprint']!r}, but this run's data has fingerprint "
                             f"{self.fingerprint!r}; delete the checkpoint or choose another path")
        if problems := run_differences(ckpt, self.meta, self.cfg.to_dict()):
            raise ValueError(f"checkpoint {self.path} was trained with other settings than this run asks for "
                             f"({'; '.join(problems)}); use the same settings to resume it, or delete it / choose "
                             f"another output folder to train anew")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise ValueError(f"checkpoint {self.path} does not fit this model: {err}") from err
        self.optimizer.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"])
        self.step, self.seconds = int(ckpt["step"]), float(ckpt["train_seconds"])
        self.history = {name: list(values) for name, values in ckpt["history"].items()}
        self.saved_step = self.step
        self.validated_step = self.history.get("val_step", [None])[-1]
        self.planned = _planned_steps(ckpt, self.path)
        extended = self._budget_changed(ckpt["train_config"], extend)
        if self.step < self.planned or extended:  # a finished run draws no more batches
            try:
                self.sampler.load_state_dict(ckpt["sampler"])
            except ValueError as err:
                raise ValueError(f"checkpoint {self.path} cannot be resumed: {err}; delete it to train again") from err
        return extended

    def _budget_changed(self, stored: dict, extend: bool) -> bool:
        """False when the budget asked for is the checkpoint's; True when a finished run may be extended;
        otherwise an error that says what to do."""
        requested = self.cfg.to_dict()
        if all(stored.get(n) == requested[n] for n in BUDGET_FIELDS):
            return False
        where = (f"checkpoint {self.path} was trained with the budget {budget_of(stored)}, this run asks for "
                 f"{budget_of(requested)}")
        if not extend:
            raise ValueError(f"{where}: pass --extend (extend=True) to train the finished run on to the new "
                             f"budget, or choose another output folder to train anew")
        if self.step < self.planned:
            raise ValueError(f"{where}, but it stopped at step {self.step} of {self.planned}: finish it with its "
                             f"own budget first, then extend it")
        return True


def finished_reason(cfg: TrainConfig, planned: int) -> str:
    """Why a run that reached its ``planned`` steps stopped: "minutes" when a time budget planned them, else "steps"."""
    return "minutes" if cfg.minutes is not None and planned < cfg.steps else "steps"


def _planned_steps(ckpt: dict, path: Path) -> int:
    if "planned_steps" in ckpt:
        return int(ckpt["planned_steps"])
    raise ValueError(f"checkpoint {path} was written by an older vqvae_lib (no planned step count); delete it "
                     "to train again")


def _snapshot_state(model: nn.Module) -> tuple[list[tuple[Tensor, Tensor]], dict]:
    """Everything a forward pass may change, to undo a diverged step: every buffer (of any dtype: a VQ-VAE's EMA
    statistics, code usage and counters), every parameter (a codebook, which EMA updates, initialisation and
    dead-code restarts write in the forward pass, EMA or not) and the random states (a restart draws from them).
    A copy of the weights per step: small beside the step itself at the course's model sizes."""
    return [(t, t.detach().clone()) for t in (*model.buffers(), *model.parameters())], _rng_state()


def _restore_state(snapshot: tuple[list[tuple[Tensor, Tensor]], dict]) -> None:
    tensors, rng = snapshot
    with torch.no_grad():
        for tensor, saved in tensors:
            tensor.copy_(saved)
    _set_rng_state(rng)


def _next_batch(sampler: BatchSampler, data: Tensor, labels: Tensor | None, device):
    idx = sampler.next_indices()                                      # (B,)
    batch = data[idx.to(data.device)].to(device, non_blocking=True)   # (B, ...) uint8 images or long codes
    if labels is None:
        return batch, None
    return batch, labels[idx.to(labels.device)].to(device)


def plan_steps(run: _Run, loss_fn: LossFn, data: Tensor, labels: Tensor | None, seconds: float) -> int:
    """How many steps of this run fit in ``seconds`` of training time, at least 1.

    Planned for ``PLAN_MARGIN`` of the time: on a 2-core CPU a sustained run is slower per step than its probe, so
    plans without the margin overran their budget.
    The timing probe: ``PROBE_WARMUP`` + ``PROBE_STEPS`` steps of a throwaway copy of the model (wrapped and
    laid out as the run's, not compiled) with its own optimizer and its own batches; only the last
    ``PROBE_STEPS`` are timed. Every random state is restored afterwards, so the run itself is the run that
    ``steps=`` the planned count gives. Under torchrun every rank probes and rank 0's plan is used."""
    state = _rng_state()
    model = copy.deepcopy(run.model)
    if run.cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    net = distributed.wrap(model)
    net.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=run.cfg.lr * 1e-3, weight_decay=0.0)
    sampler = BatchSampler(len(data), run.cfg.batch_size, run.cfg.seed + 1, distributed.rank(),
                           distributed.world_size())
    timed = 0.0
    for i in range(PROBE_WARMUP + PROBE_STEPS):
        batch, batch_labels = _next_batch(sampler, data, labels, run.device)
        if run.cfg.channels_last and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        start = perf_counter()
        with autocast(run.device, run.dtype):
            loss, _ = loss_fn(net, batch, batch_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, run.cfg.grad_clip if run.cfg.grad_clip > 0 else math.inf)
        optimizer.step()
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        if i >= PROBE_WARMUP:
            timed += perf_counter() - start
    _set_rng_state(state)
    per_step = max(timed / PROBE_STEPS, 1e-9)
    return max(1, int(_main_value(PLAN_MARGIN * seconds / per_step, run.device)))


def _plan(run: _Run, loss_fn: LossFn, data: Tensor, labels: Tensor | None) -> int:
    """The step count to train to: ``cfg.steps``, or fewer when the time budget left allows fewer."""
    if run.cfg.minutes is None:
        return run.cfg.steps
    seconds_left = run.cfg.minutes * 60 - run.seconds
    if seconds_left <= 0:
        return max(run.step, 1)
    return min(run.cfg.steps, run.step + plan_steps(run, loss_fn, data, labels, seconds_left))


def fit(model: nn.Module, data: Tensor, loss_fn: LossFn, cfg: TrainConfig, *, labels: Tensor | None = None,
        checkpoint=None, validate: Callable[[nn.Module], dict] | None = None, meta: dict | None = None,
        fingerprint: str = "", progress: bool = True, extend: bool = False) -> FitResult:
    """Train ``model`` on ``data`` (N, ...) with ``loss_fn(model, batch, labels) -> (loss, metrics)``.

    ``checkpoint``: a path; if the file exists the run resumes from it (same ``fingerprint``, model and
    settings required; ``extend=True`` lets a finished run train on to a larger budget), and it is rewritten
    every ``cfg.checkpoint_every`` steps and at the end. ``validate(model)`` returns a dict of floats; it runs
    every ``cfg.eval_every`` steps and at the end. ``meta`` (plain values: str, int, float, bool, None, lists,
    dicts) is stored in the checkpoint. A fresh run seeds Python, NumPy and torch with ``cfg.seed`` (seed
    before building the model too, for reproducible initial weights: the pipeline does); a resumed run
    restores their states. The model ends in eval mode.
    """
    if len(data) == 0:
        raise ValueError("fit needs at least one training example; data is empty")
    if labels is not None and len(labels) != len(data):
        raise ValueError(f"labels ({len(labels)}) and data ({len(data)}) differ in length")
    path = Path(checkpoint) if checkpoint is not None else None
    sampler = BatchSampler(len(data), cfg.batch_size, cfg.seed, distributed.rank(), distributed.world_size())
    run = _Run(model, cfg, sampler, path, fingerprint, dict(meta or {}))
    device = run.device
    if path is not None and path.exists():
        if run.resume(device, extend):
            run.planned = _plan(run, loss_fn, data, labels)
            if run.planned <= run.step:
                raise ValueError(f"the budget asked for ({budget_of(cfg.to_dict())}) allows no step beyond the "
                                 f"{run.step} that checkpoint {path} has already trained")
    else:
        set_seed(cfg.seed)
        run.planned = _plan(run, loss_fn, data, labels)
    start_step = run.step
    run.prepare()
    show = progress and distributed.is_main()
    with tqdm(total=run.planned, initial=run.step, disable=not show or run.step >= run.planned,
              desc=run.meta.get("kind", "fit")) as bar:
        while (stopped := run.stop_reason()) is None:
            batch, batch_labels = _next_batch(run.sampler, data, labels, device)
            lr = run.lr()
            start = perf_counter()
            loss, metrics = run.train_step(loss_fn, batch, batch_labels, lr)
            run.seconds = _main_value(run.seconds + perf_counter() - start, device)
            run.step += 1
            _record(run.history, {"step": run.step, "loss": loss, "lr": lr, "seconds": run.seconds, **metrics})
            if run.replan():
                bar.total = run.planned
            bar.update(1)
            bar.set_postfix({"loss": f"{loss:.4g}", **{k: f"{v:.4g}" for k, v in metrics.items()}}, refresh=False)
            if validate is not None and cfg.eval_every > 0 and run.step % cfg.eval_every == 0:
                run.validate(validate)
            if path is not None and cfg.checkpoint_every > 0 and run.step % cfg.checkpoint_every == 0:
                run.save()
    if stopped == "clock" and start_step < run.step and run.step < CLOCK_WARN_SHARE * run.planned:
        warnings.warn(f"the clock stopped training at step {run.step} of {run.planned} planned: the "
                      f"{cfg.minutes:g}-minute budget was spent at {run.step / run.planned:.0%} of the plan "
                      "(was the machine busy with something else?)", stacklevel=2)
    validated = validate is not None and run.validated_step != run.step  # the same decision on every rank
    if validated:
        run.validate(validate)
    if path is not None and (validated or run.saved_step != run.step):
        run.save()
    distributed.barrier()  # the final checkpoint is on disk before any rank returns
    model.eval()
    return FitResult(model=model, history=run.history, step=run.step, train_seconds=run.seconds,
                     stopped=stopped, checkpoint=path, start_step=start_step, planned_steps=run.planned,
                     minutes=cfg.minutes)
