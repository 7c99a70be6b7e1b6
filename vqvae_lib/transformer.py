"""A causal transformer prior over code maps: the same job as the gated PixelCNN, with attention.

The code map (h, w) is read as one sequence of T = h * w codes in raster order (row by row), as the PixelCNN
reads it, and the same interface holds: ``model(codes (B, h, w) long, labels (B,) | None) -> logits
(B, K, h, w)``, where the logits at (i, j) are a distribution over the code at (i, j) given the codes before
it in raster order and the label. What changes is how a position looks at the ones before it:

- the PixelCNN: stacked convolutions, each seeing a few rows above and columns to the left; the context
  grows by a few rows per layer, and every layer weighs its neighbours with the same kernel everywhere;
- the transformer (a small GPT, Radford et al. 2019; over VQ-VAE codes as in Esser et al. 2021, "Taming
  Transformers", arXiv 2012.09841): every layer lets each position attend to *all* positions before it, with
  weights computed from the content (causal self-attention). One layer already sees the whole past.

Input of the sequence at position t: the embedding of the code at t - 1 (a learned start vector at t = 0),
plus learned row and column embeddings of position t (where am I, and where is the code I predict), plus the
label's embedding. Blocks are pre-norm (LayerNorm, causal multi-head attention, LayerNorm, MLP with GELU,
each added back: GPT-2). A final LayerNorm and a linear layer give K logits per position.

Sampling with a key/value cache (``vqvae_lib.sampling``): attention at position t needs the keys and values
of positions < t, which never change once computed; so each new position runs every block on one token and
appends its keys and values to the cache: T steps of one token instead of T passes over the whole map.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import PixelCNNConfig
from .pixelcnn import CodePrior, embed_labels


class CausalSelfAttention(nn.Module):
    """(B, T, C) -> (B, T, C): each position attends to itself and the positions before it."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> q, k, v, each (B, heads, T, C / heads)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v

    def merge(self, y: torch.Tensor) -> torch.Tensor:
        """(B, heads, T, C / heads) -> (B, T, C), projected."""
        B, _, T, _ = y.shape
        return self.proj(y.transpose(1, 2).reshape(B, T, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(x)
        return self.merge(F.scaled_dot_product_attention(q, k, v, is_causal=True))

    def step(self, x: torch.Tensor, cache: torch.Tensor, t: int) -> torch.Tensor:
        """One new position: x (n, 1, C) at position t; ``cache`` (2, n, heads, T, C / heads) holds the keys and
        values of positions < t and receives those of t -> (n, 1, C)."""
        q, k, v = self.split(x)
        cache[0, :, :, t:t + 1], cache[1, :, :, t:t + 1] = k, v
        return self.merge(F.scaled_dot_product_attention(q, cache[0, :, :, :t + 1], cache[1, :, :, :t + 1]))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x)); (B, T, C) -> (B, T, C)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.attention = CausalSelfAttention(channels, heads)
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def step(self, x: torch.Tensor, cache: torch.Tensor, t: int) -> torch.Tensor:
        x = x + self.attention.step(self.norm1(x), cache, t)
        return x + self.mlp(self.norm2(x))


class CodeTransformer(CodePrior):
    """Code maps (B, h, w) long, labels (B,) or None -> logits (B, K, h, w) (see module docstring).

    ``config.channels`` is the model width C, ``config.n_layers`` the number of blocks and ``config.heads`` the
    attention heads; the map size (``config.height``, ``config.width``) is fixed by the position embeddings.
    """

    def __init__(self, cfg: PixelCNNConfig):
        super().__init__(cfg)
        C, K = cfg.channels, cfg.codebook_size
        if cfg.height < 1 or cfg.width < 1:
            raise ValueError(f"a transformer prior needs the code map size: height and width >= 1, got "
                             f"{cfg.height} and {cfg.width}")
        if cfg.cond_channels:
            raise ValueError("a transformer prior takes no conditioning map (cond_channels must be 0)")
        self.start = nn.Parameter(torch.zeros(C))                     # the input before the first code
        self.row = nn.Parameter(torch.zeros(cfg.height, C))           # position embeddings, (h, C) and (w, C)
        self.col = nn.Parameter(torch.zeros(cfg.width, C))
        self.label_embedding = nn.Embedding(cfg.n_labels, C) if cfg.n_labels else None
        self.blocks = nn.ModuleList([Block(C, cfg.heads) for _ in range(cfg.n_layers)])
        self.head = nn.Sequential(nn.LayerNorm(C), nn.Linear(C, K))
        self.apply(self._init)
        for name, param in self.named_parameters():   # GPT-2: residual projections scaled by 1 / sqrt(2 * layers)
            if name.endswith(("proj.weight", "mlp.2.weight")):
                nn.init.normal_(param, std=0.02 / (2 * cfg.n_layers) ** 0.5)
        for param in (self.start, self.row, self.col):
            nn.init.normal_(param, std=0.02)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def positions(self) -> torch.Tensor:
        """The position embeddings in raster order, (T, C)."""
        return (self.row[:, None] + self.col[None]).flatten(0, 1)

    def label_vector(self, labels: torch.Tensor | None) -> torch.Tensor | float:
        """The labels' embeddings (B, 1, C), added at every position; 0 for an unconditional prior."""
        embedded = embed_labels(self.label_embedding, labels)
        return 0.0 if embedded is None else embedded[:, None]

    def check_map_size(self, height: int, width: int) -> None:
        """Refuse code maps of another size than the position embeddings were built for."""
        if (height, width) != (self.config.height, self.config.width):
            raise ValueError(f"this prior was built for {self.config.height}x{self.config.width} code maps (its "
                             f"position embeddings), got {height}x{width}")

    def logits_from_embeddings(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                               cond: torch.Tensor | None = None) -> torch.Tensor:
        """Embedded codes (B, C, h, w) -> logits (B, K, h, w); ``receptive_field`` differentiates through this."""
        if cond is not None:
            raise ValueError("a transformer prior takes no conditioning map: pass cond=None")
        B, C, H, W = x.shape
        self.check_map_size(H, W)
        tokens = x.flatten(2).transpose(1, 2)                                   # (B, T, C)
        tokens = torch.cat([self.start.expand(B, 1, C), tokens[:, :-1]], dim=1)  # shifted: t sees codes < t
        h = tokens + self.positions() + self.label_vector(labels)
        for block in self.blocks:
            h = block(h)
        return self.head(h).transpose(1, 2).reshape(B, -1, H, W)              # (B, K, h, w)

    def new_cache(self, n: int) -> list[torch.Tensor]:
        """Empty key/value caches for ``n`` sequences: one (2, n, heads, T, C / heads) tensor per block."""
        cfg = self.config
        shape = (2, n, cfg.heads, cfg.height * cfg.width, cfg.channels // cfg.heads)
        return [self.start.new_zeros(shape) for _ in self.blocks]

    def step(self, previous: torch.Tensor | None, t: int, labels: torch.Tensor | None,
             caches: list[torch.Tensor]) -> torch.Tensor:
        """The logits (n, K) of position t, given the code at t - 1, ``previous`` (n,) long (None at t = 0);
        the codes before it are in ``caches`` (``new_cache``), which receive position t's keys and values."""
        n = caches[0].shape[1]
        token = self.start.expand(n, -1) if previous is None else self.embedding(previous)   # (n, C)
        i, j = divmod(t, self.config.width)
        h = token[:, None] + self.row[i] + self.col[j] + self.label_vector(labels)     # (n, 1, C)
        for block, cache in zip(self.blocks, caches):
            h = block.step(h, cache, t)
        return self.head(h)[:, 0]                                                          # (n, K)
