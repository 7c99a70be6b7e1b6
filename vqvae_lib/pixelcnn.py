"""PixelCNN priors over VQ-VAE code maps.

Two models with one interface, ``model(codes (B, h, w) long, labels (B,) | None) -> logits (B, K, h, w)``:
the logits at (i, j) are a distribution over the code at (i, j) given the codes before it in raster
order (the rows above, then the columns to the left in row i) and, optionally, a label.

- ``MaskedPixelCNN``: the original PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural
  Networks"): a stack of masked k x k convolutions (``MaskedConv2d``), mask A first (the centre is
  hidden), mask B after (the centre of the previous features is visible). Its receptive field has a
  blind spot: positions above and to the right that no stack of these masks ever reaches.
- ``GatedPixelCNN`` (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders"):
  a vertical stack that sees every row above and a horizontal stack that sees the current row to the
  left, joined by a v -> h connection at each layer, so there is no blind spot; gated activations
  tanh(a) * sigmoid(b), residual connections on the horizontal stack, and an optional label bias
  (``nn.Embedding(n_labels, 2C)``) added before every gate.

Position (``PixelCNNConfig.position``): convolutions are translation-equivariant, and a causal model never
sees the rows below it, so without help it cannot tell the last rows of the map from the middle ones (the
image border has codes of its own, and samples then grow tissue along the bottom edge). Each gated layer
therefore adds a learned bias per row and per column, (2C, h, 1) + (2C, 1, w), before its gates, as the
label bias is added: position is not data, so causality is untouched. They start at zero.

The gated model uses the shift trick instead of masks (the same function, without multiplying half of
every kernel by zero). With p = k // 2:
- vertical: (p + 1) x k convolutions see the current row and the p rows above. The first layer reads
  the code map shifted down by one row, so vertical features at row i depend on rows < i only.
- horizontal: 1 x (p + 1) convolutions see the current column and the p columns to the left. The first
  layer reads the map shifted right by one column ("mask A": (i, j) itself is hidden); later layers
  ("mask B") see their input at (i, j), which has never seen the code at (i, j).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import PixelCNNConfig


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W) whose row i is row i - 1 of x (row 0 is zeros)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W) whose column j is column j - 1 of x (column 0 is zeros)."""
    return F.pad(x, (1, 0, 0, 0))[..., :-1]


def gate(x: torch.Tensor) -> torch.Tensor:
    """Gated activation: (B, 2C, ...) -> tanh(first C channels) * sigmoid(last C channels), (B, C, ...)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def check_codes(codes: torch.Tensor, codebook_size: int) -> None:
    if codes.dim() != 3 or codes.dtype != torch.long:
        raise ValueError(f"expected code maps (B, h, w) of dtype long, got {codes.dtype} {tuple(codes.shape)}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= codebook_size):
        raise ValueError(f"codes must lie in [0, {codebook_size}), got [{int(codes.min())}, {int(codes.max())}]")


def embed_labels(embedding: nn.Embedding | None, labels: torch.Tensor | None) -> torch.Tensor | None:
    """The labels' rows of a conditional prior's label ``embedding``, (B, E); None for an unconditional prior
    (``embedding`` None). Refuses labels given to an unconditional prior and missing labels for a conditional one."""
    if embedding is None:
        if labels is not None:
            raise ValueError("this prior is unconditional: pass labels=None")
        return None
    if labels is None:
        raise ValueError(f"this prior is conditional on {embedding.num_embeddings} labels: pass labels (B,)")
    return embedding(labels)


class GatedLayer(nn.Module):
    """One gated layer: (v, h) -> (v', h'), each (B, C, H, W). ``mask`` "A" (first layer) or "B".

    ``vertical`` and ``horizontal`` work on any window of rows / columns; the fast sampler calls them on
    one row and one position (``vqvae_lib.sampling``), ``forward`` on the whole map.
    """

    def __init__(self, cfg: PixelCNNConfig, mask: str):
        super().__init__()
        if mask not in ("A", "B"):
            raise ValueError(f"mask must be 'A' or 'B', got {mask!r}")
        C, k = cfg.channels, cfg.kernel_size
        self.mask, self.pad = mask, k // 2
        self.v_conv = nn.Conv2d(C, 2 * C, (k // 2 + 1, k))   # the current row and p rows above
        self.h_conv = nn.Conv2d(C, 2 * C, (1, k // 2 + 1))   # the current column and p to the left
        self.v_to_h = nn.Conv2d(2 * C, 2 * C, 1)
        self.h_out = nn.Conv2d(C, C, 1)
        self.label_bias = nn.Embedding(cfg.n_labels, 2 * C) if cfg.n_labels else None
        positioned = cfg.position and cfg.height > 0 and cfg.width > 0
        self.row_bias = nn.Parameter(torch.zeros(2 * C, cfg.height, 1)) if positioned else None
        self.col_bias = nn.Parameter(torch.zeros(2 * C, 1, cfg.width)) if positioned else None

    def position_bias(self, rows: slice, width: int) -> torch.Tensor | float:
        """The position biases of ``rows`` of a map ``width`` wide, (1, 2C, n, w); 0 without position."""
        if self.row_bias is None:
            return 0.0
        if width != self.col_bias.shape[-1] or (rows.stop or 0) > self.row_bias.shape[1]:
            raise ValueError(f"this prior was built for {tuple(self.row_bias.shape[1:2]) + (self.col_bias.shape[-1],)} "
                             f"code maps (its position biases), got rows {rows.start}:{rows.stop} of width {width}")
        return (self.row_bias[:, rows] + self.col_bias)[None]

    def bias(self, labels: torch.Tensor | None) -> torch.Tensor | float:
        """The label's bias before the gates, (B, 2C, 1, 1); 0 for an unconditional layer."""
        embedded = embed_labels(self.label_bias, labels)
        return 0.0 if embedded is None else embedded[:, :, None, None]

    def vertical(self, v: torch.Tensor, bias) -> tuple[torch.Tensor, torch.Tensor]:
        """v (B, C, p + n, W): n rows and the p rows above them -> (v' (B, C, n, W), link (B, 2C, n, W)),
        where link = v_to_h(features) + bias is what the horizontal stack receives at the same positions."""
        features = self.v_conv(F.pad(v, (self.pad, self.pad, 0, 0))) + bias   # (B, 2C, n, W)
        return gate(features), self.v_to_h(features) + bias

    def horizontal(self, h: torch.Tensor, link: torch.Tensor) -> torch.Tensor:
        """h (B, C, n, p + m): m columns and the p to their left; link (B, 2C, n, m) -> h' (B, C, n, m)."""
        out = self.h_out(gate(self.h_conv(h) + link))
        return out if self.mask == "A" else h[..., self.pad:] + out  # residual (mask B only)

    def forward(self, v: torch.Tensor, h: torch.Tensor, labels: torch.Tensor | None = None):
        if self.mask == "A":
            v, h = down_shift(v), right_shift(h)
        bias = self.bias(labels) + self.position_bias(slice(0, v.shape[2]), v.shape[3])  # (B | 1, 2C, H | 1, W | 1)
        v, link = self.vertical(F.pad(v, (0, 0, self.pad, 0)), bias)                   # (B, C, H, W), (B, 2C, H, W)
        h = self.horizontal(F.pad(h, (self.pad, 0, 0, 0)), link)                     # (B, C, H, W)
        return v, h


def output_head(cfg: PixelCNNConfig) -> nn.Sequential:
    """Features (B, C, H, W) -> logits (B, K, H, W), position by position."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(cfg.channels, cfg.channels, 1), nn.ReLU(),
                         nn.Conv2d(cfg.channels, cfg.codebook_size, 1))


class CodePrior(nn.Module):
    """What the two PixelCNNs share: a code embedding, ``embed``, ``forward`` and ``nll``; a subclass defines
    ``logits_from_embeddings(x (B, C, h, w), labels) -> (B, K, h, w)``."""

    def __init__(self, cfg: PixelCNNConfig):
        super().__init__()
        self.config = cfg
        self.embedding = nn.Embedding(cfg.codebook_size, cfg.channels)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) long -> (B, C, h, w)"""
        check_codes(codes, self.config.codebook_size)
        return self.embedding(codes).permute(0, 3, 1, 2)

    def forward(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits_from_embeddings(self.embed(codes), labels)

    def nll(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Summed negative log-likelihood of code maps (B, h, w), in nats (a 0-d tensor, fp32 or more)."""
        return F.cross_entropy(self(codes, labels).float(), codes, reduction="sum")


class GatedPixelCNN(CodePrior):
    """Code maps (B, h, w) long, labels (B,) or None -> logits (B, K, h, w) (see module docstring)."""

    def __init__(self, cfg: PixelCNNConfig):
        super().__init__(cfg)
        self.layers = nn.ModuleList([GatedLayer(cfg, "A" if i == 0 else "B") for i in range(cfg.n_layers)])
        self.head = output_head(cfg)

    def logits_from_embeddings(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, h, w) -> (B, K, h, w); ``receptive_field`` differentiates through this."""
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, labels)
        return self.head(h)


def causal_mask(kernel_size: int, mask_type: str) -> torch.Tensor:
    """The (k, k) mask of 0s and 1s of a masked convolution: 1 on the positions before the centre in raster
    order (the rows above, and the left part of the centre's row), plus the centre itself for mask "B"."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive (a centre), got {kernel_size}")
    c = kernel_size // 2
    mask = torch.ones(kernel_size, kernel_size)
    mask[c, c + (mask_type == "B"):] = 0   # the centre (mask A) and everything right of it
    mask[c + 1:] = 0                        # every row below
    return mask


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution that sees only the positions before the centre in raster order (mask "A"),
    or those and the centre (mask "B"). Same-size output (padding k // 2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str):
        mask = causal_mask(kernel_size, mask_type)
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.register_buffer("mask", mask, persistent=False)
        self.mask_type = mask_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}"


class MaskedPixelCNN(CodePrior):
    """The plain PixelCNN, unconditional: a mask-A conv, then residual ReLU + mask-B convs.
    Code maps (B, h, w) long -> logits (B, K, h, w). Shows the blind spot; use ``GatedPixelCNN`` otherwise."""

    def __init__(self, cfg: PixelCNNConfig):
        super().__init__(cfg)
        C, k = cfg.channels, cfg.kernel_size
        self.convs = nn.ModuleList([MaskedConv2d(C, C, k, "A" if i == 0 else "B") for i in range(cfg.n_layers)])
        self.head = output_head(cfg)

    def logits_from_embeddings(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, h, w) -> (B, K, h, w)"""
        if labels is not None:
            raise ValueError("MaskedPixelCNN is unconditional: pass labels=None")
        h = self.convs[0](x)
        for conv in self.convs[1:]:
            h = h + conv(F.relu(h))
        return self.head(h)


def receptive_field(model: nn.Module, position: tuple[int, int], shape: tuple[int, int],
                    labels: torch.Tensor | None = None, n_inputs: int = 4, seed: int = 0) -> torch.Tensor:
    """Where the prediction at ``position`` = (i, j) looks: |d logits[:, :, i, j] / d input|, summed over
    channels and ``n_inputs`` random (seeded, Gaussian) embedded inputs of ``shape`` = (h, w) -> (h, w) on
    the CPU. Zero at (i, j) and after it in raster order; for ``MaskedPixelCNN`` also in the blind spot.
    A conditional model gets label 0 unless ``labels`` (n_inputs,) says otherwise."""
    param = next(model.parameters())
    (i, j), (H, W) = position, shape
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n_inputs, model.config.channels, H, W, generator=generator, dtype=param.dtype)
    x = x.to(param.device).requires_grad_()                                          # (n, C, h, w)
    if labels is None and model.config.n_labels and not isinstance(model, MaskedPixelCNN):
        labels = torch.zeros(n_inputs, dtype=torch.long, device=param.device)
    logits = model.logits_from_embeddings(x, labels)                                 # (n, K, h, w)
    (grad,) = torch.autograd.grad(logits[:, :, i, j].sum(), x)
    return grad.abs().sum(dim=(0, 1)).detach().cpu()                                 # (h, w)
