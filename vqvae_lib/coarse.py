"""A coarse-to-fine prior: first a small map of coarse codes, then the code map conditioned on all of it.

A PixelCNN over a 32 x 32 code map sees only the codes before each position; the global layout of a
slice (outline, ventricles, symmetry) is decided code by code, late rows knowing nothing of what comes
below them. VQ-VAE-2 (Razavi et al. 2019, arXiv 1906.00446) answers with two levels: a top prior over a
small map of coarse codes draws the layout first, and the bottom prior fills in the fine codes while
seeing the *whole* top map. Here the top map is not a second VQ-VAE level but a summary of the code map
itself, so the VQ-VAE (and its reconstructions) stay as they are:

    coarse(codes): the codebook vectors of each factor x factor block of codes are averaged and replaced
    by the nearest of ``coarse_codes`` centres (k-means on the training maps' block averages, ``fit``).

Sampling draws a coarse map from ``top`` (a gated PixelCNN over the (h / f, w / f) coarse map, with the
labels), then the code map from ``bottom`` (a gated PixelCNN with the labels and the conditioning map
``condition(coarse)``: embedded coarse codes, two 3 x 3 convolutions, nearest upsampling to (h, w)).

Likelihood: ``nll(codes)`` = -log p_top(coarse(codes)) - log p_bottom(codes | coarse(codes)). Because the
coarse map is a function of the codes, this is an upper bound on -log p(codes) (the two-level model also
gives some probability to code maps whose coarse summary differs from the coarse map drawn), so its bits
per code compare fairly with a one-level prior's: lower is better for both.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import PixelCNNConfig
from .masked import MaskedCodePrior
from .pixelcnn import GatedPixelCNN, check_codes
from .quantizer import kmeans, squared_distances
from .transformer import CodeTransformer


def top_config(cfg: PixelCNNConfig) -> PixelCNNConfig:
    """The coarse map's PixelCNN: same width and depth, ``coarse_codes`` codes, (h / f, w / f) positions."""
    f = cfg.coarse_factor
    return replace(cfg, codebook_size=cfg.coarse_codes, height=cfg.height // f, width=cfg.width // f,
                   coarse_codes=0, code_dim=0, cond_channels=0)


def bottom_config(cfg: PixelCNNConfig) -> PixelCNNConfig:
    """The code map's PixelCNN: the one-level prior plus a conditioning map of C channels."""
    return replace(cfg, coarse_codes=0, code_dim=0, cond_channels=cfg.channels)


class CoarseToFinePrior(nn.Module):
    """Code maps (B, h, w) long, labels (B,) or None -> two gated PixelCNNs (see module docstring).

    Buffers: ``code_vectors`` (K, D), the VQ-VAE's codebook, and ``centres`` (coarse_codes, D), set by ``fit``.
    """

    def __init__(self, cfg: PixelCNNConfig):
        super().__init__()
        if cfg.coarse_codes < 1 or cfg.code_dim < 1:
            raise ValueError(f"a coarse-to-fine prior needs coarse_codes >= 1 and code_dim >= 1, got "
                             f"{cfg.coarse_codes} and {cfg.code_dim}")
        if cfg.height % cfg.coarse_factor or cfg.width % cfg.coarse_factor:
            raise ValueError(f"code map {cfg.height}x{cfg.width} is not divisible by coarse_factor={cfg.coarse_factor}")
        self.config = cfg
        self.register_buffer("code_vectors", torch.zeros(cfg.codebook_size, cfg.code_dim))
        self.register_buffer("centres", torch.zeros(cfg.coarse_codes, cfg.code_dim))
        self.top = GatedPixelCNN(top_config(cfg))
        self.bottom = GatedPixelCNN(bottom_config(cfg))
        C = cfg.channels
        self.cond_embedding = nn.Embedding(cfg.coarse_codes, C)
        self.cond_net = nn.Sequential(nn.Conv2d(C, C, 3, padding=1), nn.ReLU(), nn.Conv2d(C, C, 3, padding=1))

    @torch.no_grad()
    def fit(self, codebook: torch.Tensor, maps: torch.Tensor, iters: int = 20, seed: int = 0,
            max_vectors: int = 200_000) -> CoarseToFinePrior:
        """Set ``code_vectors`` to ``codebook`` (K, D) and ``centres`` to k-means (seeded) of the block
        averages of ``maps`` (N, h, w) (at most ``max_vectors`` of them, drawn at random)."""
        self.code_vectors.copy_(codebook)
        blocks = self.block_means(maps.to(self.code_vectors.device))            # (N, D, h / f, w / f)
        vectors = blocks.permute(0, 2, 3, 1).reshape(-1, blocks.shape[1])         # (N * h * w / f^2, D)
        generator = torch.Generator().manual_seed(seed)
        vectors = vectors[torch.randperm(len(vectors), generator=generator)[:max_vectors].to(vectors.device)]
        with torch.random.fork_rng(devices=[]):  # kmeans draws its starting centres from the global generator
            torch.manual_seed(seed)
            self.centres.copy_(kmeans(vectors, self.config.coarse_codes, iters))
        return self

    def block_means(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) long -> the mean codebook vector of each block, (B, D, h / f, w / f)."""
        vectors = self.code_vectors[codes].permute(0, 3, 1, 2)                  # (B, D, h, w)
        return F.avg_pool2d(vectors, self.config.coarse_factor)

    def coarse(self, codes: torch.Tensor) -> torch.Tensor:
        """Code maps (B, h, w) long -> coarse maps (B, h / f, w / f) long: the nearest centre of each block."""
        check_codes(codes, self.config.codebook_size)
        blocks = self.block_means(codes)                                        # (B, D, h', w')
        B, D, h, w = blocks.shape
        flat = blocks.permute(0, 2, 3, 1).reshape(-1, D)                         # (B * h' * w', D)
        return squared_distances(flat, self.centres).argmin(1).view(B, h, w)

    def condition(self, coarse: torch.Tensor) -> torch.Tensor:
        """Coarse maps (B, h', w') long -> the bottom prior's conditioning map (B, C, h, w)."""
        check_codes(coarse, self.config.coarse_codes)
        x = self.cond_embedding(coarse).permute(0, 3, 1, 2)                     # (B, C, h', w')
        x = self.cond_net(x)
        return F.interpolate(x, scale_factor=self.config.coarse_factor, mode="nearest")  # (B, C, h, w)

    def forward(self, codes: torch.Tensor, labels: torch.Tensor | None = None,
                coarse: torch.Tensor | None = None) -> torch.Tensor:
        """The bottom prior's logits (B, K, h, w): each code given the codes before it, the labels and the
        whole coarse map (default: ``coarse(codes)``, the summary of these very codes)."""
        coarse = self.coarse(codes) if coarse is None else coarse
        return self.bottom(codes, labels, self.condition(coarse))

    def nll(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Summed negative log-likelihood in nats of code maps (B, h, w): top plus bottom (see module docstring)."""
        coarse = self.coarse(codes)                                              # (B, h', w')
        return self.top.nll(coarse, labels) + F.cross_entropy(self(codes, labels, coarse).float(), codes,
                                                              reduction="sum")


def build_prior(cfg: PixelCNNConfig) -> GatedPixelCNN | CoarseToFinePrior | CodeTransformer | MaskedCodePrior:
    """The prior a config describes: a causal transformer or a masked-code prior when ``cfg.architecture`` says
    so, coarse-to-fine when ``cfg.coarse_codes`` > 0, else one gated PixelCNN."""
    if cfg.architecture == "transformer":
        return CodeTransformer(cfg)
    if cfg.architecture == "masked":
        return MaskedCodePrior(cfg)
    return CoarseToFinePrior(cfg) if cfg.coarse_codes else GatedPixelCNN(cfg)
