"""VQ-VAE (van den Oord et al. 2017): a conv encoder, the vector quantizer, a conv decoder.

The layout is the DeepMind Sonnet example's: strided 4x4 convs down to the code resolution,
residual blocks there, a 1x1 conv to the code dimension D; the decoder mirrors it with strided
4x4 transposed convs. No normalisation layers, and a plain linear output (no sigmoid).
"""
from __future__ import annotations

from itertools import pairwise
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .config import RECON_LOSSES, VQVAEConfig
from .quantizer import QuantizerOutput, VectorQuantizer

IN_CHANNELS = 1  # grayscale slices


class VQVAEOutput(NamedTuple):
    reconstruction: torch.Tensor  # (B, C, H, W)
    indices: torch.Tensor         # (B, h, w) long
    loss: torch.Tensor            # scalar: recon_loss + vq.loss
    recon_loss: torch.Tensor      # scalar: reconstruction_loss between reconstruction and input
    vq: QuantizerOutput


def differences(x: Tensor) -> tuple[Tensor, Tensor]:
    """Neighbouring-pixel differences of (B, C, H, W): vertical (B, C, H - 1, W) and horizontal (B, C, H, W - 1)."""
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def reconstruction_loss(y: Tensor, target: Tensor, kind: str = "mse") -> Tensor:
    """How far a reconstruction y is from its target, both (B, C, H, W): "mse", the paper's mean squared error, or
    "l1+grad": the mean absolute error plus that of the vertical and horizontal pixel differences. A squared error
    lets small errors through cheaply, so a decoder trained on it blurs edges a little everywhere; the absolute error
    of the differences asks for edges where the target has them."""
    if kind == "mse":
        return F.mse_loss(y, target)
    if kind == "l1+grad":
        return F.l1_loss(y, target) + sum(F.l1_loss(a, b) for a, b in zip(differences(y), differences(target)))
    raise ValueError(f"reconstruction_loss: kind must be one of {RECON_LOSSES}, got {kind!r}")


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), with a narrower middle (res_channels)."""

    def __init__(self, channels: int, res_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, res_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(res_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(x))  # (B, res, h, w)
        return x + self.conv2(F.relu(h))


def residual_stack(cfg: VQVAEConfig) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(cfg.hidden_channels, cfg.res_channels)
                           for _ in range(cfg.n_res_blocks)])


def strided_channels(cfg: VQVAEConfig) -> list[int]:
    """Channels along the encoder's stride-2 convs, one per factor 2 of downsample:
    [in, hidden/2, hidden, ..., hidden]. The decoder walks it backwards."""
    n_halvings = cfg.downsample.bit_length() - 1  # log2(downsample)
    half = max(cfg.hidden_channels // 2, 1)
    return [IN_CHANNELS, half] + [cfg.hidden_channels] * (n_halvings - 1)


class Encoder(nn.Module):
    """(B, C, H, W) -> z_e (B, D, H/downsample, W/downsample)"""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch = strided_channels(cfg)
        self.down = nn.ModuleList([nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)
                                   for c_in, c_out in pairwise(ch)])
        self.conv = nn.Conv2d(ch[-1], cfg.hidden_channels, 3, padding=1)
        self.res = residual_stack(cfg)
        self.proj = nn.Conv2d(cfg.hidden_channels, cfg.embedding_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.down:
            x = F.relu(conv(x))  # halves H and W
        x = self.res(self.conv(x))  # (B, hidden, h, w)
        return self.proj(F.relu(x))  # (B, D, h, w)


class Decoder(nn.Module):
    """z_q (B, D, h, w) -> (B, C, h*downsample, w*downsample)"""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch = [cfg.hidden_channels] + strided_channels(cfg)[::-1][1:]
        self.conv = nn.Conv2d(cfg.embedding_dim, cfg.hidden_channels, 3, padding=1)
        self.res = residual_stack(cfg)
        self.up = nn.ModuleList([nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
                                 for c_in, c_out in pairwise(ch)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.res(self.conv(z))  # (B, hidden, h, w)
        for conv in self.up:
            x = conv(F.relu(x))  # doubles H and W
        return x  # (B, C, H, W)


class VQVAE(nn.Module):
    """x -> encode -> z_e -> quantize -> z_q (and indices) -> decode -> x_hat.

    Images are float in [0, 1], shape (B, 1, H, W), with H and W divisible by downsample.
    """

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer.from_config(cfg)
        self.decoder = Decoder(cfg)

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> what the encoder sees: (x - input_offset) * input_scale (the baselines)."""
        cfg = self.config
        return x if (cfg.input_offset, cfg.input_scale) == (0.0, 1.0) else (x - cfg.input_offset) * cfg.input_scale

    def to_image(self, y: torch.Tensor) -> torch.Tensor:
        """The decoder's output -> images in [0, 1] (before clamping): the inverse of ``to_model``."""
        cfg = self.config
        return y if (cfg.input_offset, cfg.input_scale) == (0.0, 1.0) else y / cfg.input_scale + cfg.input_offset

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.encoder(self.to_model(x))  # (B, D, h, w)

    def quantize(self, z_e: torch.Tensor) -> QuantizerOutput:
        return self.quantizer(z_e)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.to_image(self.decoder(z_q))  # (B, C, H, W)

    @torch.no_grad()
    def encode_indices(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> code indices (B, h, w). Never changes the codebook, even in training mode."""
        return self.quantizer.nearest(self.encode(x))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) -> reconstruction (B, C, H, W)"""
        return self.decode(self.quantizer.lookup(indices))

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        vq = self.quantize(self.encode(x))
        y = self.decoder(vq.quantized)  # (B, C, H, W), in the encoder's input range
        # the loss where the model works (the baselines: [-0.5, 0.5] or [-1, 1], divided by the data variance)
        recon_loss = reconstruction_loss(y.float(), self.to_model(x).float(), self.config.recon_loss) \
            / self.config.recon_divisor
        x_hat = self.to_image(y)
        return VQVAEOutput(reconstruction=x_hat, indices=vq.indices, loss=recon_loss + vq.loss,
                           recon_loss=recon_loss, vq=vq)

    def latent_shape(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        """Shape (h, w) of the code map for images of size image_size (an int for square images)."""
        H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
        ds = self.config.downsample
        if H % ds or W % ds:
            raise ValueError(f"image size {(H, W)} is not divisible by downsample={ds}")
        return H // ds, W // ds

    def _check(self, x: torch.Tensor) -> None:
        C, ds = IN_CHANNELS, self.config.downsample
        if x.ndim != 4 or x.shape[1] != C or x.shape[2] % ds or x.shape[3] % ds:
            raise ValueError(f"VQVAE expects images of shape (B, {C}, H, W) with H and W divisible by "
                             f"downsample={ds}; got shape {tuple(x.shape)}")


def vqvae_loss(model: nn.Module, batch: Tensor, labels: Tensor | None = None) -> tuple[Tensor, dict]:
    """The VQ-VAE objective on uint8 images (B, 1, S, S): reconstruction loss + the quantizer's loss."""
    out = model(batch.float() / 255.0)
    return out.loss, {"recon": out.recon_loss, "perplexity": out.vq.perplexity,
                      "active_codes": out.vq.active_codes}
