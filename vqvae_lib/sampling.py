"""Sampling code maps from a PixelCNN prior: batched, seeded, temperature, top-k, support, labels, completion.

Randomness: before any model call, one uniform number per position per sample, ``u`` (n, h, w) float32, is
drawn from ``torch.Generator().manual_seed(seed)`` on the CPU. The code at (i, j) is the inverse CDF of
the processed distribution (temperature, then top-k) at ``u[:, i, j]``, computed in float64 on the model's
device, or in float32 on a device without float64 (Apple's MPS: ``utils.exact_dtype``). The randomness
therefore does not depend on the logits, the sampler or the device.

Two samplers, one result:
- ``naive``: a full forward pass over the whole map for every position (h * w passes). The reference.
- ``fast`` (``GatedPixelCNN`` only): nothing is computed twice. At the start of row i every layer's
  vertical stack is computed for row i alone (it depends on rows < i only, which are final), from
  cached vertical features of the rows above; at each position (i, j) every layer's horizontal stack
  is computed for that one position (as matrix products, ``HorizontalStep``), from cached horizontal features of
  row i and the row's vertical features. Exact, because of the causal structure (in the spirit of Ramachandran et
  al. 2017, "Fast Generation for Convolutional Autoregressive Models").

What "one result" means on each device. Both samplers compute the same logits up to float rounding (the same
sums in another order), and a code can only differ where a uniform lies within that rounding of a step of the
cumulative distribution: on the CPU the two give identical maps (tested, at float64 and at float32 arithmetic).
On a CUDA GPU, cuDNN may run convolutions in TF32 (10-bit mantissa), which would widen that rounding a
thousandfold; ``sample`` switches TF32 off while it runs (``full_precision``), so the maps agree there as on the
CPU, except at such rare near-ties, which are not tested for lack of a GPU in CI. The seed, not the sampler, is
what a result should be reproduced with.

Support (``code_support``, ``support_for``): the codes the training maps have at each position, per label. With
``support``, a code is drawn at (i, j) only if some training map (of the sample's label) has it there: where every
training slice is background, the sampler cannot put tissue, whatever the prior has or has not learned yet. The
prior's own distribution is renormalised over those codes, before temperature and top-k.

Labels (``labels_in_proportion``, ``default_labels``): without a requested label, a conditional prior draws from
p(x) = sum over y of p(y) p(x | y) only if its labels come in the training slices' proportions p(y). Taking each
label in turn instead over-represents rare labels (one kaggle class has 44 of 4,097 training slices but would get
a quarter of the samples, nearly alike), so the default is the training proportions; ``load_prior`` reads them
from beside the checkpoint (``label_counts``).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from .config import SUPPORTS
from .pixelcnn import GatedPixelCNN
from .utils import evaluating, exact_dtype


def distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """What a sample is drawn from: logits (B, K) divided by ``temperature``; with ``top_k`` only the k
    largest stay possible -> probabilities (B, K) in float64 (float32 on a device without it: ``exact_dtype``)."""
    logits = logits.to(exact_dtype(logits.device)) / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]                  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits.softmax(dim=-1)


def choose(logits: torch.Tensor, u: torch.Tensor, temperature: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """Inverse-CDF sampling: logits (B, K), uniforms u (B,) in [0, 1) -> codes (B,) long: the first code
    whose cumulative probability (``distribution``) exceeds u."""
    return inverse_cdf(distribution(logits, temperature, top_k), u)


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """probs (B, K), uniforms u (B,) in [0, 1) -> codes (B,) long: the first code whose cumulative probability
    exceeds u (times the total, so that rounding never runs past the last code)."""
    cdf = probs.cumsum(dim=-1)                                            # (B, K)
    target = u.to(cdf) * cdf[:, -1]                                       # (B,)
    return (cdf <= target[:, None]).sum(dim=-1).clamp(max=probs.shape[-1] - 1)


def uniforms(n: int, shape: tuple[int, int], seed: int | torch.Generator) -> torch.Tensor:
    """The randomness of a sampling run: (n, h, w) float32 in [0, 1) on the CPU, in raster order per sample (float32,
    so that every device, with float64 or without, draws from the same numbers)."""
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=generator, dtype=torch.float32)


@torch.no_grad()
def naive_loop(model: nn.Module, codes: torch.Tensor, labels, u: torch.Tensor, start_row: int, pick) -> None:
    """Fill ``codes`` (n, h, w) from ``start_row`` on, one full forward pass per position."""
    _, H, W = codes.shape
    for i in range(start_row, H):
        for j in range(W):
            logits = model(codes, labels)[:, :, i, j]                         # (n, K)
            codes[:, i, j] = pick(logits, u[:, i, j], (i, j))


@torch.no_grad()
def fast_loop(model: GatedPixelCNN, codes: torch.Tensor, labels, u: torch.Tensor, start_row: int, pick) -> None:
    """Fill ``codes`` (n, h, w) from ``start_row`` on: the vertical stacks once per row, the horizontal
    stacks once per position (see module docstring). Rows above ``start_row`` are read, not sampled."""
    n, H, W = codes.shape
    p, C, L = model.config.kernel_size // 2, model.config.channels, len(model.layers)
    biases = [layer.bias(labels) for layer in model.layers]                # label biases: (n, 2C, 1, 1) or 0
    dtype = model.embedding.weight.dtype
    # vertical input of each layer, p zero rows on top: map row r at index r + p; layer 0 reads the
    # embedded map shifted down by one row, so embedded row r goes to index r + 1 + p
    v_in = [codes.new_zeros((n, C, H + p + 1, W), dtype=dtype) for _ in range(L)]
    step = HorizontalStep(model)
    for i in range(H):
        links = vertical_row(model, v_in, i, biases)                          # L x (n, 2C, 1, W)
        if i >= start_row:
            sample_row(model, codes, i, links, u, pick, step)
        v_in[0][:, :, i + p + 1] = model.embed(codes[:, i:i + 1])[:, :, 0]   # (n, C, W)


def vertical_row(model: GatedPixelCNN, v_in: list[torch.Tensor], i: int, biases) -> list[torch.Tensor]:
    """Every layer's link to its horizontal stack on row i, (n, 2C, 1, W) each; writes each layer's
    vertical output on row i into the next layer's input."""
    p = model.config.kernel_size // 2
    links = []
    width = v_in[0].shape[-1]
    for l, layer in enumerate(model.layers):
        bias = biases[l] + layer.position_bias(slice(i, i + 1), width)      # (n | 1, 2C, 1, W | 1)
        v, link = layer.vertical(v_in[l][:, :, i:i + p + 1], bias)           # (n, C, 1, W), (n, 2C, 1, W)
        links.append(link)
        if l + 1 < len(v_in):
            v_in[l + 1][:, :, i + p] = v[:, :, 0]
    return links


class HorizontalStep:
    """The horizontal stacks and the output head at one position, as matrix products: each 1 x (p + 1) convolution
    over a window of p + 1 columns is one product with its weight flattened (the same sums as the convolution, in
    another order: the same logits up to float rounding), and a product costs far less to start than a
    convolution of a single position, which dominates the sampler's time on a CPU."""

    def __init__(self, model: GatedPixelCNN):
        def flat(conv: nn.Conv2d) -> torch.Tensor:                  # (out, in, 1, k) -> (k * in, out): window-major
            return conv.weight[:, :, 0].permute(2, 1, 0).reshape(-1, conv.out_channels)
        self.layers = [(flat(layer.h_conv), flat(layer.h_out), layer.h_out.bias, layer.mask == "B")
                       for layer in model.layers]
        self.link_biases = [layer.h_conv.bias for layer in model.layers]    # added once per row to the links
        self.head = [(flat(conv), conv.bias) for conv in model.head if isinstance(conv, nn.Conv2d)]
        self.p = model.config.kernel_size // 2

    def __call__(self, h_in: list[torch.Tensor], links: list[torch.Tensor], j: int) -> torch.Tensor:
        """Every layer at column j: h_in[l] (n, W + p + 1, C) are the layers' horizontal inputs (column c at index
        c + p, written here for the layers above), links[l] (n, W, 2C) the vertical stacks' links plus the
        convolution's bias -> logits (n, K)."""
        p = self.p
        for l, (w_h, w_out, b_out, residual) in enumerate(self.layers):
            window = h_in[l][:, j:j + p + 1].reshape(len(h_in[l]), -1)             # (n, (p + 1) C)
            features = torch.addmm(links[l][:, j], window, w_h)                     # (n, 2C)
            a, b = features.chunk(2, dim=1)
            h = torch.addmm(b_out, torch.tanh(a) * torch.sigmoid(b), w_out)         # (n, C)
            if residual:                                                            # mask B: the input here
                h = h + h_in[l][:, j + p]
            if l + 1 < len(h_in):
                h_in[l + 1][:, j + p] = h
        (w1, b1), (w2, b2) = self.head                                              # ReLU, 1x1, ReLU, 1x1
        return torch.addmm(b2, torch.addmm(b1, h.relu(), w1).relu(), w2)             # (n, K)


def sample_row(model: GatedPixelCNN, codes: torch.Tensor, i: int, links: list[torch.Tensor], u: torch.Tensor,
               pick, step: HorizontalStep) -> None:
    """Sample row i of ``codes`` position by position; only the horizontal stacks run (``HorizontalStep``)."""
    n, _, W = codes.shape
    p, C = model.config.kernel_size // 2, model.config.channels
    # horizontal input of each layer on row i, p zero columns on the left: column c at index c + p;
    # layer 0 reads the embedded row shifted right by one column (column c at index c + 1 + p)
    h_in = [links[0].new_zeros(n, W + p + 1, C) for _ in model.layers]
    links = [link[:, :, 0].transpose(1, 2) + bias for link, bias in zip(links, step.link_biases)]   # (n, W, 2C)
    for j in range(W):
        codes[:, i, j] = pick(step(h_in, links, j), u[:, i, j], (i, j))
        h_in[0][:, j + p + 1] = model.embedding(codes[:, i, j])                 # (n, C)


def _labels(labels, n: int, device) -> torch.Tensor | None:
    if labels is None:
        return None
    labels = torch.as_tensor(labels, dtype=torch.long, device=device)
    return labels.expand(n).clone() if labels.dim() == 0 else labels


def _start(n: int, shape, prompt, keep_rows: int, device) -> torch.Tensor:
    """The code map to fill, (n, h, w): zeros, with the top ``keep_rows`` rows of ``prompt`` copied in."""
    codes = torch.zeros(n, *shape, dtype=torch.long, device=device)
    if keep_rows:
        if prompt is None:
            raise ValueError("keep_rows > 0 needs a prompt code map to keep the rows of")
        prompt = torch.as_tensor(prompt, dtype=torch.long, device=device)
        codes[:, :keep_rows] = prompt.expand(n, *shape)[:, :keep_rows]
    return codes


def labels_in_proportion(counts: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` labels (n,) long in the proportions of ``counts`` (L,) (how many training slices have each label): label l
    comes n * counts[l] / sum(counts) times, rounded by largest remainder (ties to the lower label), in turn
    0, 1, ..., L - 1, 0, 1, ... among the labels not yet used up. Equal counts give ``arange(n) % L``."""
    counts = [int(c) for c in torch.as_tensor(counts).flatten().tolist()]   # whole numbers: exact shares, no floats
    if not counts or min(counts) < 0 or sum(counts) <= 0:
        raise ValueError(f"counts must be non-negative label counts with a positive sum, got {counts}")
    total = sum(counts)
    quota = [n * c // total for c in counts]                              # n * share, rounded down
    order = sorted(range(len(counts)), key=lambda i: (-(n * counts[i] % total), i))   # largest remainder first
    for i in order[:n - sum(quota)]:
        quota[i] += 1
    labels, remaining = [], quota
    while len(labels) < n:
        for label, r in enumerate(remaining):
            if r:
                labels.append(label)
                remaining[label] -= 1
    return torch.tensor(labels, dtype=torch.long)


def default_labels(model: nn.Module, n: int) -> torch.Tensor | None:
    """The labels of ``n`` samples when none is asked for: None for an unconditional prior; in the training slices'
    proportions (``labels_in_proportion`` of the prior's ``label_counts``) for a conditional one, or each label in
    turn when the prior was saved without its counts."""
    n_labels = model.config.n_labels
    if not n_labels:
        return None
    counts = getattr(model, "label_counts", None)
    return torch.arange(n) % n_labels if counts is None else labels_in_proportion(counts, n)


def code_support(indices: torch.Tensor, codebook_size: int, labels: torch.Tensor | None = None,
                 n_labels: int = 0) -> torch.Tensor:
    """Which codes the maps use where: code maps (N, h, w) long -> (L, h, w, K) bool, True where code k occurs at
    (i, j) in some map of label l (L = ``n_labels``; L = 1, every map, with ``labels`` None). What a prior's sampler
    may restrict itself to (``sampling.sample(support=...)``): a code that no training map has at a position (the
    tissue codes in the image border, say) is never drawn there. ``widen_support`` relaxes it."""
    if indices.dim() != 3:
        raise ValueError(f"code_support needs code maps (N, h, w), got shape {tuple(indices.shape)}")
    if (labels is None) != (n_labels == 0) or (labels is not None and len(labels) != len(indices)):
        raise ValueError(f"code_support: pass labels (N,) with n_labels > 0, or neither; got n_labels={n_labels} "
                         f"and labels of length {None if labels is None else len(labels)} for {len(indices)} maps")
    N, h, w = indices.shape
    group = torch.zeros(N, dtype=torch.long) if labels is None else labels.long().cpu()
    seen = torch.zeros(max(n_labels, 1) * h * w * codebook_size, dtype=torch.bool)
    position = torch.arange(h * w).view(1, h, w)                                       # (1, h, w)
    seen[((group.view(N, 1, 1) * h * w + position) * codebook_size + indices.cpu()).flatten()] = True
    return seen.view(max(n_labels, 1), h, w, codebook_size)


def widen_support(support: torch.Tensor, radius: int = 0, by_label: bool = True) -> torch.Tensor:
    """A support (L, h, w, K) bool relaxed: a code allowed at (i, j) becomes allowed within ``radius`` positions of
    it (a square window); without ``by_label``, a code allowed under one label is allowed under all: (1, h, w, K)."""
    if radius < 0:
        raise ValueError(f"widen_support: radius must be >= 0, got {radius}")
    if not by_label:
        support = support.any(dim=0, keepdim=True)
    if radius:
        L, h, w, K = support.shape
        grid = support.permute(0, 3, 1, 2).reshape(L * K, 1, h, w).float()         # (L K, 1, h, w)
        grid = torch.nn.functional.max_pool2d(grid, 2 * radius + 1, stride=1, padding=radius)
        support = grid.view(L, K, h, w).permute(0, 2, 3, 1).bool()
    return support.contiguous()


def support_for(model: nn.Module, kind: str = "label", radius: int = 0) -> torch.Tensor | None:
    """The ``support`` for ``sample`` that a sampling setting asks for (``SamplingConfig.support``): "none" -> None;
    "position": the codes some training map has at each position, (1, h, w, K); "label": those some training map
    of the sample's label has there, (L, h, w, K) (the same as "position" for an unconditional prior); "depth":
    "label" when the prior's labels are slice depths (``label_kind``), "position" otherwise (a class label says
    little about where tissue lies, and a rare class would allow only the few codes of its few maps); each within
    ``radius`` positions. From the prior's ``code_support`` (``load_prior`` reads it from beside the checkpoint)."""
    if kind not in SUPPORTS:
        raise ValueError(f"support must be one of {SUPPORTS}, got {kind!r}")
    if kind == "none":
        return None
    if kind == "depth":
        kind = "label" if getattr(model, "label_kind", None) == "depth" else "position"
    seen = getattr(model, "code_support", None)
    if seen is None:
        raise ValueError("this prior has no code support (a checkpoint trained before supports were saved beside "
                         "it): run train-prior on its run again, which writes it, or sample with support 'none'")
    return widen_support(seen, radius, by_label=kind == "label")


def _support_groups(support: torch.Tensor | None, labels: torch.Tensor | None, n: int, shape, model: nn.Module,
                    device) -> torch.Tensor | None:
    """Which slice of ``support`` (L, h, w, K) each of the n samples uses: (n,) long (its label, or 0 when L = 1);
    None without a support. Refuses a support of another map size, codebook or label count."""
    if support is None:
        return None
    K, n_labels = model.config.codebook_size, model.config.n_labels
    if support.dtype != torch.bool or support.dim() != 4 or tuple(support.shape[1:]) != (*shape, K) \
            or support.shape[0] not in (1, n_labels):
        raise ValueError(f"support must be (1 or {n_labels or 1} labels, {shape[0]}, {shape[1]}, {K}) bool for this "
                         f"prior and map size, got {tuple(support.shape)} {support.dtype}")
    if not bool(support.any(dim=-1).all()):
        raise ValueError("the support allows no code at some position (of some label)")
    if support.shape[0] == 1:
        return torch.zeros(n, dtype=torch.long, device=device)
    if labels is None:
        raise ValueError("a support per label needs the samples' labels")
    return labels


def _restrict(logits: torch.Tensor, support: torch.Tensor | None, groups: torch.Tensor | None, i: int,
              j: int) -> torch.Tensor:
    """logits (n, K) of position (i, j) with the codes that ``support`` (L, h, w, K) does not allow there, under
    each sample's ``groups`` (n,) (``_support_groups``), set to -inf; unchanged without a support."""
    if groups is None:
        return logits
    return logits.masked_fill(~support[groups, i, j], float("-inf"))


@torch.no_grad()
def sample(model: nn.Module, n: int, shape: tuple[int, int] | None = None, *, labels=None,
           temperature: float = 1.0, top_k: int | None = None, seed: int = 0, prompt: torch.Tensor | None = None,
           keep_rows: int = 0, naive: bool = False, support: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` code maps (n, h, w) long from ``model``, in raster order (see module docstring).

    shape: (h, w); default: the prompt's, else ``model.latent_shape`` (set by ``load_prior``).
    labels: None, one int for every sample, or (n,) long. temperature > 0; top_k: keep the k likeliest.
    prompt, keep_rows: completion: the top ``keep_rows`` rows of ``prompt`` ((h, w) or (n, h, w)) are
    kept and the rest is sampled. naive: the reference sampler instead of the fast one.
    support: (L, h, w, K) bool (``code_support``): only the codes it allows at (i, j) can be drawn there,
    under the sample's label when L > 1 (L = the prior's labels), for every sample when L = 1; applied before
    temperature and top-k.
    """
    if temperature <= 0 or (top_k is not None and top_k < 1) or n < 1:
        raise ValueError(f"need n >= 1, temperature > 0 and top_k >= 1; got {n}, {temperature}, {top_k}")
    shape = tuple(shape or (prompt.shape[-2:] if prompt is not None else model.latent_shape))
    if not 0 <= keep_rows <= shape[0]:
        raise ValueError(f"keep_rows must lie in [0, {shape[0]}], got {keep_rows}")
    if not naive and not isinstance(model, GatedPixelCNN):
        raise ValueError(f"the fast sampler needs a GatedPixelCNN, got {type(model).__name__}: pass naive=True")
    device = next(model.parameters()).device
    codes = _start(n, shape, prompt, keep_rows, device)
    generator = torch.Generator().manual_seed(seed)
    loop = naive_loop if naive else fast_loop
    labels = _labels(labels, n, device)
    groups = _support_groups(support, labels, n, shape, model, device)                # (n,) or None
    support = None if support is None else support.to(device)

    def pick(logits, uu, ij):  # (n, K), (n,), (i, j) -> codes (n,)
        return choose(_restrict(logits, support, groups, *ij), uu, temperature, top_k)

    with evaluating(model), full_precision(device):
        loop(model, codes, labels, uniforms(n, shape, generator).to(device), keep_rows, pick)
    return codes


@contextmanager
def full_precision(device: torch.device):
    """On a CUDA device, switch TF32 off for cuDNN convolutions and matrix products while sampling (restored after):
    with it, the naive sampler's convolutions and the fast sampler's products would round differently. Elsewhere
    nothing to do."""
    if torch.device(device).type != "cuda":
        yield
        return
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


@torch.no_grad()
def next_code_distribution(model: nn.Module, codes: torch.Tensor, position: tuple[int, int], *, labels=None,
                           temperature: float = 1.0, top_k: int | None = None,
                           support: torch.Tensor | None = None) -> torch.Tensor:
    """The distribution the sampler draws the code at ``position`` = (i, j) from, given the code map
    ``codes`` (h, w) (only the codes before (i, j) in raster order matter), ``labels`` (None or an int) and
    ``support`` (as in ``sample``): (K,) on the CPU, float64 (float32 from a device without float64)."""
    device = next(model.parameters()).device
    i, j = position
    labels = _labels(labels, 1, device)
    with full_precision(device):
        logits = model(codes.to(device)[None], labels)[:, :, i, j]                   # (1, K)
    groups = _support_groups(support, labels, 1, tuple(codes.shape), model, device)
    support = None if support is None else support.to(device)
    return distribution(_restrict(logits, support, groups, i, j), temperature, top_k)[0].cpu()


@torch.no_grad()
def decode(vqvae: nn.Module, codes: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Code maps (n, h, w) -> images (n, 1, H, W) float in [0, 1] on the CPU, through the VQ-VAE's decoder."""
    device = next(vqvae.parameters()).device
    images = [vqvae.decode_indices(codes[s:s + batch_size].to(device)).clamp(0, 1).cpu()
              for s in range(0, len(codes), batch_size)]
    return torch.cat(images)
