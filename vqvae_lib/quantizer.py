"""The vector quantizer of VQ-VAE (van den Oord et al. 2017), and the tricks that keep a codebook alive.

Each encoder output vector z_e is replaced by its nearest code e (squared L2 distance). The decoder
sees e, the encoder gets the decoder's gradient through the straight-through estimator, and two
extra terms pull codes and encoder outputs together:

    loss = ||sg[z_e] - e||^2  +  beta * ||z_e - sg[e]||^2
           codebook loss          commitment loss (beta multiplies this one)

Options: EMA codebook updates instead of the codebook loss (paper appendix), codebook initialisation
from encoder outputs ("data") or their k-means centroids ("kmeans"), and restarts of dead codes.
For the two baselines (``VQVAEConfig.reference`` and ``misha``): a codebook uniform in +-sqrt(3/D)
("scaled", Sonnet), EMA statistics started at zero and debiased (``ema_debias``, Sonnet), and beta on the
codebook term instead of the commitment term (``beta_term="codebook"``, as MishaLaskin/vqvae's code has it).

Precision: distances, losses and EMA arithmetic always run in fp32, with autocast switched off here,
so the rest of the model can train in bf16 (a known way to blow up VQ training is a bf16 argmin).
Data parallel (torchrun): the code counts and sums of every rank are all-reduced before the EMA update,
and new codes (initialisation, restarts) are drawn on rank 0 and broadcast, so the codebook stays
identical on every rank.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import VQVAEConfig
from .distributed import all_reduce_sum_, broadcast_
from .metrics import histogram_perplexity
from .utils import AUTOCAST_DEVICES

INITS = ("random", "scaled", "data", "kmeans")
USAGE_DECAY = 0.7   # a code's usage: the EMA of its share of the vectors over about the last 1 / (1 - 0.7) = 3 batches


class QuantizerOutput(NamedTuple):
    quantized: torch.Tensor        # (B, D, h, w) the codes, with a straight-through gradient to z_e
    indices: torch.Tensor          # (B, h, w) long: index of the nearest code
    loss: torch.Tensor             # scalar: codebook_loss + beta * commitment_loss
    codebook_loss: torch.Tensor    # scalar: ||sg[z_e] - e||^2 (zero with EMA updates)
    commitment_loss: torch.Tensor  # scalar: ||z_e - sg[e]||^2, the term that beta multiplies
    perplexity: torch.Tensor       # scalar: exp(entropy of the batch's code histogram)
    active_codes: int              # distinct codes used in the batch


def fp32(method):
    """Run ``method(self, z, ...)`` on ``z.float()`` with autocast switched off: the quantizer computes in
    fp32 whatever precision the rest of the model trains in."""
    @functools.wraps(method)
    def in_fp32(self, z: torch.Tensor, *args, **kwargs):
        if z.device.type not in AUTOCAST_DEVICES:   # no autocast to switch off (MPS: torch.autocast refuses it)
            return method(self, z.float(), *args, **kwargs)
        with torch.autocast(z.device.type, enabled=False):
            return method(self, z.float(), *args, **kwargs)
    return in_fp32


def flatten(z: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B*h*w, D): one row per spatial position."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def squared_distances(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """||x_n - c_k||^2 for x (N, D) and codes (K, D) -> (N, K), always in fp32."""
    x, codes = x.float(), codes.float()
    cross = torch.addmm(codes.pow(2).sum(1), x, codes.t(), alpha=-2)  # ||c_k||^2 - 2 x_n.c_k, (N, K)
    return x.pow(2).sum(1, keepdim=True) + cross


def sample_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """n random rows of x (N, D): without replacement when N >= n, else with replacement."""
    if x.shape[0] >= n:
        idx = torch.randperm(x.shape[0], device=x.device)[:n]
    else:
        idx = torch.randint(x.shape[0], (n,), device=x.device)
    return x[idx]  # (n, D)


def kmeans(x: torch.Tensor, k: int, iters: int = 10) -> torch.Tensor:
    """Lloyd's k-means on the rows of x (N, D) -> centroids (k, D). An empty cluster keeps its centroid."""
    centroids = sample_rows(x, k)  # (k, D)
    for _ in range(iters):
        assign = squared_distances(x, centroids).min(1).indices  # (N,)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1).to(x.dtype)  # (k, 1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)  # (k, D)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
    return centroids


class VectorQuantizer(nn.Module):
    """Nearest-neighbour lookup in a codebook of K vectors of dimension D.

    ema:          move the codes by running averages of their assigned vectors (no codebook loss)
    init:         "random" | "data" (K encoder outputs of the first training batch) | "kmeans"
    restart_dead: in training, re-seed dead codes on recent encoder outputs. The rule (``dead_codes``): a code is
                  dead when its share of the encoder's vectors, averaged over about the last 3 batches
                  (``USAGE_DECAY``), is below ``dead_share`` of a fair share 1 / K. Shares, not counts: the rule
                  means the same at any batch size, image size or number of processes. Every code starts (and a
                  restarted code starts again) at a fair share, so an unused code is restarted after 8 batches
                  (0.7^8 < 1/16), not at the first batch it misses.
    """

    def __init__(self, codebook_size: int, embedding_dim: int, beta: float = 0.25, ema: bool = False,
                 ema_decay: float = 0.99, ema_epsilon: float = 1e-5, init: str = "random",
                 restart_dead: bool = False, dead_share: float = 1 / 16, ema_debias: bool = False,
                 beta_term: str = "commitment"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.codebook_size = codebook_size
        self.embedding_dim = embedding_dim
        self.beta = beta
        self.ema = ema
        self.ema_decay = ema_decay
        self.ema_epsilon = ema_epsilon
        self.init = init
        self.restart_dead = restart_dead
        if not 0 < dead_share < 1:
            raise ValueError(f"dead_share must lie in (0, 1), got {dead_share}")
        self.dead_share = dead_share
        self.ema_debias, self.beta_term = ema_debias, beta_term
        K = codebook_size
        # "random": uniform in +-1/K (the PyTorch ports: MishaLaskin, zalando); "scaled": uniform in
        # +-sqrt(3/D), Sonnet's VarianceScaling(distribution="uniform") over its (D, K) embedding shape
        bound = math.sqrt(3.0 / embedding_dim) if init == "scaled" else 1.0 / K
        codes = torch.empty(K, embedding_dim).uniform_(-bound, bound)  # (K, D)
        # with EMA the running averages move the codes, not the optimizer
        self.embeddings = nn.Parameter(codes, requires_grad=not ema)
        if ema:
            # each code starts as one vector lying on itself: N_i = 1, m_i = e_i, so m_i / N_i = e_i;
            # debiased (Sonnet): both start at zero and are divided by 1 - decay^t, t = updates so far
            self.register_buffer("ema_cluster_size", torch.zeros(K) if ema_debias else torch.ones(K))  # N_i
            self.register_buffer("ema_embed_sum", torch.zeros_like(codes) if ema_debias else codes.clone())  # m_i
            if ema_debias:
                self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))  # t
        self.register_buffer("usage", torch.full((K,), 1.0 / K))  # EMA of each code's share of the vectors
        self.register_buffer("initialized", torch.tensor(init in ("random", "scaled")))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))  # codes restarted so far

    @classmethod
    def from_config(cls, cfg: VQVAEConfig) -> VectorQuantizer:
        return cls(cfg.codebook_size, cfg.embedding_dim, beta=cfg.beta, ema=cfg.ema,
                   ema_decay=cfg.ema_decay, ema_epsilon=cfg.ema_epsilon, init=cfg.codebook_init,
                   restart_dead=cfg.restart_dead, dead_share=cfg.dead_share, ema_debias=cfg.ema_debias,
                   beta_term=cfg.beta_term)

    @property
    def codebook(self) -> torch.Tensor:
        return self.embeddings  # (K, D)

    @fp32
    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        self._check(z_e)
        B, D, h, w = z_e.shape
        z = flatten(z_e)  # (N, D), N = B*h*w
        if self.training and not bool(self.initialized):
            self.init_codebook(z.detach())
        indices = self.nearest(z_e).flatten()  # (N,)
        e = F.embedding(indices, self.embeddings).float()  # (N, D)
        commitment_loss = F.mse_loss(z, e.detach())
        codebook_loss = z.new_zeros(()) if self.ema else F.mse_loss(e, z.detach())
        if self.beta_term == "commitment":
            loss = codebook_loss + self.beta * commitment_loss  # the paper's eq. 3
        else:
            loss = self.beta * codebook_loss + commitment_loss  # MishaLaskin/vqvae's models/quantizer.py
        quantized = z + (e - z).detach()  # straight-through: the value of e, the gradient of z
        counts = torch.bincount(indices, minlength=self.codebook_size)  # (K,) this process's batch
        if self.training:
            counts = self.update(z.detach(), indices, counts)  # (K,) summed over all ranks' batches
        return QuantizerOutput(
            quantized=quantized.view(B, h, w, D).permute(0, 3, 1, 2).contiguous(),  # (B, D, h, w)
            indices=indices.view(B, h, w),
            loss=loss,
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            perplexity=histogram_perplexity(counts),
            active_codes=int((counts > 0).sum()),
        )

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for every position: (B, D, h, w) -> (B, h, w). No side effects."""
        return self.nearest_with_distances(z_e)[0]

    @torch.no_grad()
    @fp32
    def nearest_with_distances(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The nearest code for every position and its squared distance: (B, D, h, w) -> ((B, h, w) long,
        (B, h, w) float32). No side effects."""
        self._check(z_e)
        B, _, h, w = z_e.shape
        best = squared_distances(flatten(z_e), self.embeddings).min(1)  # over (B*h*w, K): min is faster on CPU
        return best.indices.view(B, h, w), best.values.clamp(min=0).view(B, h, w)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes of an index map: (B, h, w) -> (B, D, h, w)."""
        return F.embedding(indices, self.embeddings).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def update(self, z_flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Training-time bookkeeping after a batch: usage, EMA codebook update, dead-code restarts.
        Returns the code counts (K,) of the global batch (all ranks' counts summed)."""
        counts = all_reduce_sum_(counts.float())  # (K,)
        self.usage.lerp_(counts / counts.sum().clamp(min=1), 1 - USAGE_DECAY)  # shares of the global batch
        if self.ema:
            self.ema_update(z_flat, indices, counts)
        if self.restart_dead:
            self.restart_dead_codes(z_flat)
        return counts

    @torch.no_grad()
    def ema_update(self, z_flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        """N_i <- g N_i + (1-g) n_i,  m_i <- g m_i + (1-g) sum_{z -> i} z,  e_i = m_i / N_i.

        For e_i only, N_i is Laplace-smoothed, (N_i + eps) / (n + K eps) * n with n = sum_i N_i,
        so that a code with no vectors never divides by zero. The buffer keeps the raw N_i.
        ``counts`` are the global batch's (see ``update``); the sums are all-reduced here.
        """
        g, eps, K = self.ema_decay, self.ema_epsilon, self.codebook_size
        embed_sum = torch.zeros_like(self.ema_embed_sum).index_add_(0, indices, z_flat)  # (K, D)
        all_reduce_sum_(embed_sum)
        self.ema_cluster_size.mul_(g).add_(counts.float(), alpha=1 - g)
        self.ema_embed_sum.mul_(g).add_(embed_sum, alpha=1 - g)
        debias = 1.0
        if self.ema_debias:
            self.ema_updates += 1
            debias = 1 - g ** int(self.ema_updates)
        cluster_size, embed_sum = self.ema_cluster_size / debias, self.ema_embed_sum / debias
        n = cluster_size.sum()
        size = (cluster_size + eps) / (n + K * eps) * n  # (K,)
        self.embeddings.copy_(embed_sum / size.unsqueeze(1))

    @torch.no_grad()
    def init_codebook(self, z_flat: torch.Tensor) -> None:
        """Codebook from encoder outputs z_flat (N, D): K sampled rows ("data") or k-means centroids
        (rank 0's, broadcast to every rank under torchrun)."""
        z = z_flat.float()
        codes = kmeans(z, self.codebook_size) if self.init == "kmeans" else sample_rows(z, self.codebook_size)
        broadcast_(codes)
        self.embeddings.copy_(codes)
        if self.ema:
            self.ema_cluster_size.fill_(1.0)
            self.ema_embed_sum.copy_(codes)
        self.initialized.fill_(True)

    def dead_codes(self) -> torch.Tensor:
        """Ids (n_dead,) of the codes whose recent share of the vectors is below ``dead_share`` / K."""
        return (self.usage < self.dead_share / self.codebook_size).nonzero().squeeze(1)

    @torch.no_grad()
    def restart_dead_codes(self, z_flat: torch.Tensor) -> int:
        """Move every dead code (``dead_codes``) onto a random row of z_flat (N, D), plus a little noise, and
        give it a fair share of usage again (and fresh EMA statistics). Returns how many codes moved."""
        dead = self.dead_codes()  # (n_dead,)
        n_dead = dead.numel()
        if n_dead == 0:
            return 0
        z = z_flat.float()
        codes = sample_rows(z, n_dead)  # (n_dead, D)
        codes = codes + 0.01 * z.std() * torch.randn_like(codes)
        broadcast_(codes)  # rank 0's draw, on every rank
        self.embeddings[dead] = codes
        self.usage[dead] = 1.0 / self.codebook_size
        if self.ema:
            self.ema_cluster_size[dead] = 1.0
            self.ema_embed_sum[dead] = codes
        self.restarts += n_dead
        return n_dead

    def _check(self, z_e: torch.Tensor) -> None:
        if z_e.ndim != 4 or z_e.shape[1] != self.embedding_dim:
            raise ValueError(f"VectorQuantizer expects (B, {self.embedding_dim}, h, w), "
                             f"got shape {tuple(z_e.shape)}")

    def extra_repr(self) -> str:
        return (f"codebook_size={self.codebook_size}, embedding_dim={self.embedding_dim}, "
                f"beta={self.beta}, ema={self.ema}, init={self.init!r}, restart_dead={self.restart_dead}")
