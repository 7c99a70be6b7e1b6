"""A masked-code prior: every code predicted from all the codes around it, drawn in a few parallel steps.

The PixelCNN and the causal transformer read a code map in raster order: the code at (i, j) is drawn knowing
only the codes above it and to its left, so the outline, the ventricles and the left-right symmetry of a slice
are decided row by row, the last rows unable to change what the first rows began. A masked-code model
(MaskGIT, Chang et al. 2022, arXiv 2202.04200; BERT's masked-token objective over VQ codes) sees both ways:

- training: hide a random share of the codes of each map (the share itself drawn at random, cosine schedule:
  from a few codes to all of them), replace them with a "hidden" token, and predict each hidden code from every
  code that is still visible and the label (cross-entropy over the hidden positions only);
- sampling (``vqvae_lib.sampling``): start with every code hidden; in each of ``mask_steps`` steps predict all
  hidden codes at once, draw a candidate at each, keep the most confident candidates (the layout first: the
  codes the model is surest of) and hide the rest again; by the last step every code is drawn. 12 steps of one
  network pass instead of h * w sequential positions.

The network is a small U-Net over the (h, w) map of embedded codes: residual 3 x 3 convolutions at (h, w),
(h / 2, w / 2) and (h / 4, w / 4), so that the coarsest level sees the whole map, with learned row and column
embeddings (where am I) and the label's embedding added to the input.

Likelihood: a masked model has no exact likelihood. Its ``nll`` in eval mode is that of one fixed way of using it
as a sampler: the positions revealed in ``mask_steps`` groups of a fixed random order (the sampling schedule's
group sizes), each group predicted from the groups before it. That is a proper distribution over code maps (a
``mask_steps``-step autoregressive model over groups), so its bits per code compare with the PixelCNN's: an
honest description length, though not of the confidence-ordered sampler itself. In training mode ``nll`` is the
masked objective above (a random share hidden), which is what ``fit`` minimises.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import PixelCNNConfig
from .pixelcnn import check_codes, embed_labels

# Gumbel noise on the confidences at the first step, annealed to 0 (MaskGIT's choice_temperature)
CONFIDENCE_NOISE = 4.5


def hidden_after(step: int, steps: int, total: int) -> int:
    """How many of ``total`` positions are still hidden after ``step`` (0-based) of ``steps``: the cosine
    schedule ``floor(total * cos(pi / 2 * (step + 1) / steps))``, at least one fewer than before, 0 at the end."""
    if step >= steps - 1:
        return 0
    before = total if step == 0 else hidden_after(step - 1, steps, total)
    return max(0, min(before - 1, math.floor(total * math.cos(math.pi / 2 * (step + 1) / steps))))


class ResBlock(nn.Module):
    """(B, C, h, w) -> (B, C, h, w): x + conv(act(norm(conv(act(norm(x))))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.GroupNorm(8, channels), nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1),
                                 nn.GroupNorm(8, channels), nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])


class MaskedCodePrior(nn.Module):
    """Code maps (B, h, w) long with hidden positions set to K, labels (B,) or None -> logits (B, K, h, w).

    ``config.channels`` C: width at (h, w) (2C at h / 2, 4C at h / 4); ``config.n_layers``: residual blocks per
    level (each level has them on the way down, the coarsest once, the way up one block per level).
    """

    def __init__(self, cfg: PixelCNNConfig):
        super().__init__()
        if cfg.height < 4 or cfg.width < 4 or cfg.height % 4 or cfg.width % 4:
            raise ValueError(f"a masked-code prior needs a code map size divisible by 4, got {cfg.height}x{cfg.width}")
        if cfg.channels % 8:
            raise ValueError(f"a masked-code prior needs channels divisible by 8 (group norm), got {cfg.channels}")
        self.config = cfg
        C, K, n = cfg.channels, cfg.codebook_size, cfg.n_layers
        self.hidden = K                                                     # the token of a hidden position
        self.embedding = nn.Embedding(K + 1, C)
        self.rows = nn.Parameter(torch.zeros(C, cfg.height, 1))
        self.cols = nn.Parameter(torch.zeros(C, 1, cfg.width))
        self.label_embedding = nn.Embedding(cfg.n_labels, C) if cfg.n_labels else None
        self.down0, self.down1, self.down2 = stage(C, n), stage(2 * C, n), stage(4 * C, n)
        self.pool1, self.pool2 = nn.Conv2d(C, 2 * C, 2, stride=2), nn.Conv2d(2 * C, 4 * C, 2, stride=2)
        self.unpool2, self.unpool1 = nn.ConvTranspose2d(4 * C, 2 * C, 2, stride=2), nn.ConvTranspose2d(2 * C, C, 2, 2)
        self.up1, self.up0 = stage(2 * C, 1), stage(C, 1)
        self.head = nn.Sequential(nn.GroupNorm(8, C), nn.GELU(), nn.Conv2d(C, K, 1))

    def forward(self, codes: torch.Tensor, labels: torch.Tensor | None = None, cond=None) -> torch.Tensor:
        """Logits (B, K, h, w) of every position given the visible codes (hidden ones are K) and the labels."""
        if cond is not None:
            raise ValueError("a masked-code prior takes no conditioning map: pass cond=None")
        check_codes(codes, self.config.codebook_size + 1)
        if tuple(codes.shape[-2:]) != (self.config.height, self.config.width):
            raise ValueError(f"this masked-code prior takes {self.config.height}x{self.config.width} code maps, got "
                             f"{codes.shape[-2]}x{codes.shape[-1]}")
        x = self.embedding(codes).permute(0, 3, 1, 2) + self.rows + self.cols    # (B, C, h, w)
        label = embed_labels(self.label_embedding, labels)                      # (B, C) or None
        if label is not None:
            x = x + label[:, :, None, None]
        x0 = self.down0(x)                                                      # (B, C, h, w)
        x1 = self.down1(self.pool1(x0))                                         # (B, 2C, h / 2, w / 2)
        x2 = self.down2(self.pool2(x1))                                         # (B, 4C, h / 4, w / 4)
        y1 = self.up1(self.unpool2(x2) + x1)                                    # (B, 2C, h / 2, w / 2)
        y0 = self.up0(self.unpool1(y1) + x0)                                    # (B, C, h, w)
        return self.head(y0)                                                    # (B, K, h, w)

    def hide(self, codes: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Code maps (B, h, w) with the positions where ``hidden`` (B, h, w) bool is True set to the hidden token."""
        return codes.masked_fill(hidden, self.hidden)

    def nll(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Training mode: the masked objective, summed nats scaled to all B * h * w codes (mean over the hidden
        ones times their count); eval mode: the fixed-order ``mask_steps``-group likelihood (module docstring)."""
        check_codes(codes, self.config.codebook_size)
        if self.training:
            return self.masked_nll(codes, labels)
        return self.group_nll(codes, labels)

    def masked_nll(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        B, h, w = codes.shape
        share = torch.cos(math.pi / 2 * torch.rand(B, 1, 1, device=codes.device))   # (B, 1, 1) in (0, 1]
        hidden = torch.rand(B, h, w, device=codes.device) < share                  # (B, h, w)
        hidden.view(B, -1)[:, 0] |= ~hidden.view(B, -1).any(1)                     # at least one per map
        logits = self(self.hide(codes, hidden), labels).float()                    # (B, K, h, w)
        nats = F.cross_entropy(logits, codes, reduction="none")                    # (B, h, w)
        return (nats * hidden).sum() / hidden.sum() * codes.numel()

    def order(self) -> torch.Tensor:
        """The fixed random order of positions (h * w,) long of the eval likelihood (seed 0)."""
        n = self.config.height * self.config.width
        return torch.randperm(n, generator=torch.Generator().manual_seed(0))

    def group_nll(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        B, h, w = codes.shape
        steps, total = self.config.mask_steps, h * w
        rank = torch.empty(total, dtype=torch.long)
        rank[self.order()] = torch.arange(total)
        rank = rank.view(h, w).to(codes.device)                                    # (h, w): when each is revealed
        nats, revealed = codes.new_zeros((), dtype=torch.float32), 0
        for step in range(steps):
            now = total - hidden_after(step, steps, total)                          # revealed after this step
            hidden = rank >= revealed                                               # (h, w)
            group = hidden & (rank < now)                                           # revealed in this step
            logits = self(self.hide(codes, hidden.expand(B, h, w)), labels).float()  # (B, K, h, w)
            step_nats = F.cross_entropy(logits, codes, reduction="none")            # (B, h, w)
            nats = nats + step_nats[:, group].sum()
            revealed = now
        return nats
