"""The priors the course teaches, their training objective and likelihoods, with the two baselines a PixelCNN
must beat.

All likelihoods are negative log-likelihoods of held-out code maps, in bits: per code (position) and
per image (one code map: h * w codes).

- uniform prior: every code equally likely, log2 K bits per code;
- independent-codes prior: each position drawn independently from the training histogram of codes
  (add-one smoothing, so an unseen code costs finite bits);
- PixelCNN: each code given the codes before it (and the label): ``build_prior`` makes the gated one
  (``vqvae_lib.pixelcnn``) from a ``PixelCNNConfig``; it is what the pipeline trains, checkpoints hold and the
  sampler draws from.

Priors that did not beat the gated PixelCNN at the class budget (coarse-to-fine, masked-code, a causal
transformer) are described with their measurements in benchmarks/RESULTS.md, "What did not win".
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import PixelCNNConfig
from .metrics import bits_per_code, code_usage
from .pixelcnn import GatedPixelCNN
from .utils import evaluating


def build_prior(cfg: PixelCNNConfig) -> GatedPixelCNN:
    """The prior a ``PixelCNNConfig`` describes: the gated PixelCNN."""
    return GatedPixelCNN(cfg)


def code_nll(model: nn.Module, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Summed negative log-likelihood in nats of code maps (B, h, w): the model's own ``nll`` where it has one
    (``pixelcnn.CodePrior``), else the cross-entropy of its logits ``model(codes, labels)``."""
    if hasattr(model, "nll"):
        return model.nll(codes, labels)
    return F.cross_entropy(model(codes, labels).float(), codes, reduction="sum")


def prior_loss(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor | None = None):
    """For ``fit``: code maps (B, h, w) long -> (cross-entropy in nats per code, {"bits_per_code"})."""
    nll = code_nll(model, batch, labels) / batch.numel()    # mean over B * h * w codes, nats
    return nll, {"bits_per_code": bits_per_code(nll.detach())}


def bits(nats_per_code: float, shape: tuple[int, int]) -> dict:
    """{"bits_per_code", "bits_per_image"} from a mean NLL in nats per code of (h, w) maps."""
    per_code = bits_per_code(nats_per_code)
    return {"bits_per_code": per_code, "bits_per_image": per_code * shape[0] * shape[1]}


@torch.no_grad()
def evaluate_prior(model: nn.Module, maps: torch.Tensor, labels: torch.Tensor | None = None,
                   batch_size: int = 64) -> dict:
    """NLL of code maps (N, h, w) under ``model``: {"bits_per_code", "bits_per_image"}.

    Pass ``labels`` (N,) to a conditional model. Runs in eval mode; the mode is restored afterwards.
    """
    device = next(model.parameters()).device
    total = 0.0
    with evaluating(model):
        for s in range(0, len(maps), batch_size):
            batch = maps[s:s + batch_size].to(device)                               # (B, h, w)
            batch_labels = None if labels is None else labels[s:s + batch_size].to(device)
            total += float(code_nll(model, batch, batch_labels))
    return bits(total / maps.numel(), tuple(maps.shape[-2:]))


def prior_validator(maps: torch.Tensor, labels: torch.Tensor | None = None) -> Callable[[nn.Module], dict]:
    """A ``validate`` callback for ``fit``: bits per code and per image on held-out code maps."""
    return lambda model: evaluate_prior(model, maps, labels)


def uniform_bits(codebook_size: int, shape: tuple[int, int]) -> dict:
    """The uniform prior: log2 K bits per code."""
    return bits(math.log(codebook_size), shape)


class IndependentPrior:
    """Every position drawn independently from one histogram of codes: p (K,) float64."""

    def __init__(self, probs: torch.Tensor):
        self.probs = probs.double() / probs.double().sum()

    @classmethod
    def fit(cls, maps: torch.Tensor, codebook_size: int, smoothing: float = 1.0) -> IndependentPrior:
        """The training histogram of code maps (N, h, w) plus ``smoothing`` per code (add-one by default)."""
        return cls(code_usage(maps, codebook_size).double() + smoothing)

    def evaluate(self, maps: torch.Tensor) -> dict:
        """NLL of code maps (N, h, w): {"bits_per_code", "bits_per_image"}."""
        nats = -self.probs.log()[maps.flatten().cpu()].mean()
        return bits(float(nats), tuple(maps.shape[-2:]))

    def sample(self, n: int, shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
        """(n, h, w) long code maps, every position independent (seeded)."""
        generator = torch.Generator().manual_seed(seed)
        codes = torch.multinomial(self.probs, n * shape[0] * shape[1], replacement=True, generator=generator)
        return codes.view(n, *shape)


def likelihood_table(model: nn.Module, train_maps, test_maps) -> dict[str, dict]:
    """Bits per code and per image on ``test_maps`` (``CodeMaps``) for the uniform prior, the independent
    prior fitted on ``train_maps`` and ``model`` (given the labels when it is conditional)."""
    labels = test_maps.labels if getattr(model.config, "n_labels", 0) else None
    return {
        "uniform": uniform_bits(test_maps.codebook_size, test_maps.shape),
        "independent": IndependentPrior.fit(train_maps.indices, train_maps.codebook_size).evaluate(test_maps.indices),
        "pixelcnn": evaluate_prior(model, test_maps.indices, labels),
    }
