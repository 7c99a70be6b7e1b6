"""Checks for the write-it-yourself exercises: each runs a student's function on small seeded inputs against the
library's own implementation and says in one line what is right, or what is wrong and a hint.

    check_quantize(fn)      # fn(z (B, D, H, W) float, codebook (K, D)) -> (z_q (B, D, H, W), indices (B, H, W) long)
    check_perplexity(fn)    # fn(indices: LongTensor of any shape, K: int) -> float: exp of the entropy of code usage
    check_causal_mask(fn)   # fn(kernel_size: int, mask_type: "A" | "B") -> (k, k) float tensor of 0 and 1
    check_distribution(fn)  # fn(logits (B, K), temperature: float, top_k: int | None) -> probabilities (B, K)

Every check returns True or False and never raises: a function that still raises ``NotImplementedError`` (the
stub a student starts from) gets "not yet", so a notebook run from top to bottom goes on with the library's
version. A wrong answer is compared with the typical mistakes (argmax for argmin, the centre visible in a
type-A mask, the temperature multiplied, top-k ignored, ...) so that the message names the mistake.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .metrics import code_usage, perplexity
from .pixelcnn import causal_mask
from .quantizer import VectorQuantizer
from .sampling import distribution

PASS, FAIL, NOT_YET = "✓", "✗", "…"


class Wrong(Exception):
    """What is wrong with a student's answer, with a hint: the one line a check prints."""


def run_check(name: str, fn: Callable, check: Callable[[Callable], str]) -> bool:
    """Run ``check(fn)``: print one line (pass, not yet, or what is wrong) and return whether it passed."""
    try:
        praise = check(fn)
    except NotImplementedError:
        print(f"{NOT_YET} {name}: not yet. Write the body of {name} above (it still raises NotImplementedError); "
              "the notebook goes on with the library's version.")
        return False
    except Wrong as wrong:
        print(f"{FAIL} {name}: {wrong}")
        return False
    except Exception as error:   # the student's code raised: say what and where it is, never fail the notebook
        print(f"{FAIL} {name} raised {type(error).__name__}: {error}")
        return False
    print(f"{PASS} {name}: {praise}")
    return True


def _tensor(value, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise Wrong(f"{what} should be a torch.Tensor, got {type(value).__name__}.")
    return value


def _same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4)


# -- 02: the quantizer's forward ---------------------------------------------------------------------------------

def library_quantize(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The library's quantizer with this codebook, in the exercise's signature: (z_q, indices)."""
    vq = VectorQuantizer(*codebook.shape).eval()
    with torch.no_grad():
        vq.embeddings.copy_(codebook)
    out = vq(z)
    return out.quantized, out.indices


def _quantize_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 3, 4, 5, generator=g)      # (B, D, H, W): 40 vectors of dimension 3
    codebook = torch.randn(7, 3, generator=g)     # (K, D)
    return z, codebook


def _quantize(fn: Callable) -> str:
    z, codebook = _quantize_inputs()
    B, D, H, W = z.shape
    z = z.requires_grad_()
    codebook = codebook.clone().requires_grad_()
    result = fn(z, codebook)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Wrong("return two things, (z_q, indices).")
    z_q, indices = _tensor(result[0], "z_q"), _tensor(result[1], "indices")
    if z_q.shape != (B, D, H, W):
        hint = " Move D back to dimension 1: permute(0, 3, 1, 2)." if z_q.shape == (B, H, W, D) else ""
        raise Wrong(f"z_q has shape {tuple(z_q.shape)}; it should have z's shape (B, D, H, W) = {(B, D, H, W)}.{hint}")
    if indices.shape != (B, H, W):
        hint = " Reshape them to (B, H, W)." if indices.numel() == B * H * W else ""
        raise Wrong(f"indices have shape {tuple(indices.shape)}; expected (B, H, W) = {(B, H, W)}.{hint}")
    if indices.dtype != torch.long:
        raise Wrong(f"indices are {indices.dtype}; they should be code numbers (torch.long), e.g. from argmin.")
    want_zq, want = library_quantize(z.detach(), codebook.detach())
    if not torch.equal(indices, want):
        flat = z.detach().permute(0, 2, 3, 1).reshape(-1, D)               # (N, D), one row per position
        distances = torch.cdist(flat, codebook.detach())                   # (N, K)
        if torch.equal(indices.flatten(), distances.argmax(1)):
            raise Wrong("these are the farthest codes: argmax instead of argmin. The nearest code has the "
                        "smallest distance.")
        if torch.equal(indices.flatten(), (flat @ codebook.detach().T).argmax(1)):
            raise Wrong("the largest dot product z·e is not the nearest code (long codes win). Use the squared "
                        "distance ||z - e||^2 = ||z||^2 - 2 z·e + ||e||^2.")
        unpermuted = torch.cdist(z.detach().reshape(-1, D), codebook.detach()).argmin(1)
        if torch.equal(indices.flatten(), unpermuted):
            raise Wrong("z was reshaped to (-1, D) with D still in dimension 1, which mixes numbers of different "
                        "positions. Move D last first: z.permute(0, 2, 3, 1).reshape(-1, D).")
        wrong = int((indices != want).sum())
        raise Wrong(f"{wrong} of {indices.numel()} positions do not hold the index of their nearest code "
                    "(smallest squared L2 distance to z at that position).")
    if not _same(z_q.detach(), want_zq.detach()):
        if _same(z_q.detach(), z.detach()):
            raise Wrong("z_q has the values of z: its value should be the nearest code e, its gradient z's.")
        raise Wrong("the indices are right but z_q does not hold their codes: z_q[b, :, i, j] should be "
                    "codebook[indices[b, i, j]].")
    if not z_q.requires_grad:
        raise Wrong("z_q carries no gradient: the straight-through estimator gives it the value of e and the "
                    "gradient of z: z_q = z + (e - z).detach().")
    upstream = torch.randn(z_q.shape, generator=torch.Generator().manual_seed(1))
    (z_q * upstream).sum().backward()
    if z.grad is None or not z.grad.abs().sum() > 0:
        raise Wrong("no gradient reaches z, the encoder's output: the encoder would never learn. Straight-through: "
                    "z_q = z + (e - z).detach().")
    if not _same(z.grad, upstream):
        raise Wrong("the gradient reaching z is not the decoder's gradient unchanged. Straight-through copies it: "
                    "z_q = z + (e - z).detach().")
    if codebook.grad is not None and codebook.grad.abs().sum() > 0:
        raise Wrong("the decoder's gradient reaches the codebook through z_q: detach e inside the straight-through "
                    "(z + (e - z).detach()). The codes learn from their own loss term, ||sg[z] - e||^2.")
    return "the nearest codes, and the decoder's gradient passes straight through to z."


def check_quantize(fn: Callable) -> bool:
    """fn(z (B, D, H, W), codebook (K, D)) -> (z_q (B, D, H, W), indices (B, H, W) long): z_q has the values of the
    nearest codes and passes the gradient straight through to z (and none to the codebook)."""
    return run_check(getattr(fn, "__name__", "quantize"), fn, _quantize)


# -- 03: perplexity ------------------------------------------------------------------------------------------------

def library_perplexity(indices: torch.Tensor, K: int) -> float:
    """The library's perplexity of a map of code indices, in the exercise's signature."""
    return perplexity(code_usage(indices, K))


def _perplexity_cases() -> list[tuple[str, torch.Tensor, int]]:
    g = torch.Generator().manual_seed(0)
    skewed = torch.multinomial(torch.tensor([8.0, 4, 2, 1, 1, 0.5, 0.5] + [0] * 25), 3 * 8 * 8, replacement=True,
                               generator=g).view(3, 8, 8)
    return [("a map with 8 codes used equally often, K = 16", torch.arange(8).repeat(4).view(2, 4, 4), 16),
            ("a map of one single code, K = 16", torch.full((2, 4, 4), 5), 16),
            ("a (3, 8, 8) map with codes used unequally, K = 32", skewed, 32),
            ("a flat list of codes, K = 4", torch.tensor([0, 0, 1, 2, 3, 3, 3, 3]), 4)]


def _entropy(counts: torch.Tensor) -> float:
    """Entropy in nats of a code histogram (K,): unused codes contribute nothing."""
    p = counts[counts > 0].double() / counts.sum()
    return float(-(p * p.log()).sum())


def _perplexity(fn: Callable) -> str:
    for what, indices, K in _perplexity_cases():
        got = fn(indices.clone(), K)
        try:
            got = float(got)
        except (TypeError, ValueError, RuntimeError):
            raise Wrong(f"return one number (a float); got {type(got).__name__} for {what}.") from None
        counts = code_usage(indices, K)   # (K,): counted once, for the answer and for the diagnosis
        want = perplexity(counts)
        if math.isclose(got, want, rel_tol=1e-4):
            continue
        H, used = _entropy(counts), int(counts.gt(0).sum())
        if math.isnan(got):
            raise Wrong(f"NaN for {what}: a code that never occurs has p = 0 and log 0 = -inf. Its term p log p is 0: "
                        "leave unused codes out (or clamp p before the log).")
        if math.isclose(got, H, rel_tol=1e-4):
            raise Wrong(f"{got:.3f} is the entropy ({what}); the perplexity is exp(entropy), here {want:.3f}.")
        if math.isclose(got, math.exp(H / math.log(2)), rel_tol=1e-4):
            raise Wrong(f"exp of an entropy in bits ({what}): use the natural log with exp, or log2 with 2 ** entropy.")
        if math.isclose(got, used) and used != round(want):
            raise Wrong(f"{got:g} is the number of distinct codes ({what}); the perplexity weighs each code by how "
                        f"often it is used: {want:.3f} here.")
        if math.isclose(got, K):
            raise Wrong(f"{got:g} is K ({what}); the perplexity counts the codes the map actually uses, weighted by "
                        f"how often: {want:.3f} here.")
        raise Wrong(f"{got:.4g} for {what}; expected {want:.4g}. Perplexity: p_k = count_k / total, "
                    "exp(-sum_k p_k log p_k).")
    return "uniform use of 8 codes gives 8, one code gives 1, and unequal use lies in between."


def check_perplexity(fn: Callable) -> bool:
    """fn(indices (any shape, long), K) -> float: exp of the entropy of the codes' usage."""
    return run_check(getattr(fn, "__name__", "perplexity"), fn, _perplexity)


# -- 04: the causal mask -------------------------------------------------------------------------------------------

def _causal_mask(fn: Callable) -> str:
    for k in (3, 5):
        for kind in ("A", "B"):
            got = fn(k, kind)
            got = _tensor(got, f"the mask for kernel_size={k}, mask_type={kind!r}")
            if got.shape != (k, k):
                raise Wrong(f"the mask for kernel_size={k} has shape {tuple(got.shape)}; expected {(k, k)}.")
            got = got.double()
            if not torch.all((got == 0) | (got == 1)):
                raise Wrong(f"the mask for kernel_size={k}, type {kind} holds values other than 0 and 1.")
            want = causal_mask(k, kind).double()
            if torch.equal(got, want):
                continue
            c, other = k // 2, causal_mask(k, "B" if kind == "A" else "A").double()
            where = f"(kernel_size={k}, type {kind})"
            if torch.equal(got, other):
                if kind == "A":
                    raise Wrong(f"the centre is visible in your type-A mask {where}. Mask A is the first layer's: "
                                "the centre is the code being predicted, so it must be hidden (0).")
                raise Wrong(f"the centre is hidden in your type-B mask {where}. Later layers may see the centre: "
                            "the features there have not seen the code at this position.")
            if torch.equal(got, want.T):
                raise Wrong(f"columns instead of rows {where}: in raster order the rows above are visible, and in "
                            "the centre's row only the positions to its left.")
            if torch.equal(got, want.flip(0, 1)):
                raise Wrong(f"the future instead of the past {where}: the visible positions come before the centre "
                            "in raster order, the rows above and the left part of its own row.")
            if got[c + 1:].any():
                raise Wrong(f"rows below the centre are visible {where}: those codes come later in raster order, "
                            "set them to 0.")
            if got[c, c + 1:].any():
                raise Wrong(f"positions right of the centre are visible {where}: they come later in raster order.")
            raise Wrong(f"the mask {where} hides some position that comes before the centre: the rows above and the "
                        f"left part of the centre's row should be 1, as in {want.int().tolist()}.")
    return "the rows above and the left of the centre are visible, the centre only in type B."


def check_causal_mask(fn: Callable) -> bool:
    """fn(kernel_size, mask_type "A" | "B") -> (k, k) tensor of 0s and 1s, as ``pixelcnn.causal_mask``."""
    return run_check(getattr(fn, "__name__", "causal_mask"), fn, _causal_mask)


# -- 05: the distribution a code is drawn from ---------------------------------------------------------------------

DISTRIBUTION_CASES = ((1.0, None), (0.5, None), (2.0, None), (0.7, 3), (1.3, 1), (1.0, 10))


def _distribution(fn: Callable) -> str:
    logits = 2 * torch.randn(3, 10, generator=torch.Generator().manual_seed(0))   # (B, K)
    B, K = logits.shape
    for T, top_k in DISTRIBUTION_CASES:
        got = fn(logits.clone(), T, top_k)
        where = f"(temperature={T}, top_k={top_k})"
        got = _tensor(got, f"the result {where}")
        if got.shape != logits.shape:
            raise Wrong(f"shape {tuple(got.shape)} {where}; expected the logits' shape {tuple(logits.shape)}, "
                        "one probability per code and row.")
        got = got.double()
        want = distribution(logits, T, top_k).double()
        if _same(got, want):
            continue
        kept = min(top_k or K, K)
        if _same(got, F.softmax(logits.double() / T, dim=0)):
            raise Wrong(f"softmax over the rows {where}: each row is one distribution over the K codes, dim=-1.")
        if T != 1 and _same(got, distribution(logits * T, 1.0, top_k)):
            raise Wrong(f"the temperature multiplied instead of divided {where}: logits / T, so that T < 1 "
                        "sharpens the distribution and T > 1 flattens it.")
        if top_k is not None and top_k < K and _same(got, distribution(logits, T, None)):
            raise Wrong(f"top-k ignored {where}: only the top_k likeliest codes may keep a probability; set the "
                        "others to -inf before the softmax.")
        if _same(got, logits.double() / T):
            raise Wrong(f"these are the logits divided by T {where}; return probabilities: softmax(dim=-1).")
        if _same(got, F.log_softmax(logits.double() / T, dim=-1)) or (top_k and _same(got, want.log())):
            raise Wrong(f"log-probabilities {where}; return the probabilities themselves.")
        nonzero = (got > 0).sum(dim=-1)
        if top_k is not None and torch.all(nonzero == kept):
            smallest = F.softmax(logits.double() / T, dim=-1).argsort(dim=-1)[:, :kept]
            if torch.all(got.gather(1, smallest) > 0):
                raise Wrong(f"these keep the {kept} least likely codes {where}: keep the largest logits, "
                            "topk(k).values, not the smallest.")
        if top_k is not None and not torch.all(nonzero == kept):
            raise Wrong(f"rows keep {sorted(set(nonzero.tolist()))} codes {where}; top_k={top_k} keeps exactly "
                        f"{kept} (the logits at least as large as the k-th largest).")
        if not torch.allclose(got.sum(-1), torch.ones(B, dtype=got.dtype), atol=1e-5):
            raise Wrong(f"the rows sum to {[round(s, 3) for s in got.sum(-1).tolist()]} {where}, not 1: "
                        "renormalise after removing codes (a softmax over the kept logits does it).")
        raise Wrong(f"not the expected probabilities {where}: softmax(logits / T) over the top_k likeliest codes, "
                    "0 elsewhere.")
    return "softmax(logits / T) over the top-k likeliest codes, the rest 0."


def check_distribution(fn: Callable) -> bool:
    """fn(logits (B, K), temperature, top_k or None) -> probabilities (B, K), as ``sampling.distribution``."""
    return run_check(getattr(fn, "__name__", "distribution"), fn, _distribution)
