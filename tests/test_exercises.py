"""The write-it-yourself checks: each accepts the library's implementation and a from-scratch one, says "not yet" to
the stub a student starts from, and rejects the typical wrong answers with a message that names the mistake."""
import math

import pytest
import torch
import torch.nn.functional as F

from vqvae_lib import exercises
from vqvae_lib.pixelcnn import causal_mask
from vqvae_lib.sampling import distribution


def verdict(check, fn, capsys) -> tuple[bool, str]:
    passed = check(fn)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, f"a check prints one line, got {out!r}"
    return passed, out


def stub(*args):
    raise NotImplementedError("your turn")


def nearest(z, codebook, score=lambda flat, codebook: -torch.cdist(flat, codebook)):
    B, D, H, W = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, D)                 # (N, D)
    indices = score(flat, codebook).argmax(1)                   # (N,)
    e = codebook[indices].view(B, H, W, D).permute(0, 3, 1, 2)  # (B, D, H, W)
    return e, indices.view(B, H, W)


def quantize(z, codebook):
    e, indices = nearest(z, codebook)
    return z + (e - z).detach(), indices


QUANTIZE_MISTAKES = {
    "argmax instead of argmin": lambda z, c: (lambda e, i: (z + (e - z).detach(), i))(
        *nearest(z, c, score=lambda flat, c: torch.cdist(flat, c))),
    "largest dot product": lambda z, c: (lambda e, i: (z + (e - z).detach(), i))(
        *nearest(z, c, score=lambda flat, c: flat @ c.T)),
    "no gradient reaches z": lambda z, c: nearest(z, c),
    "no gradient reaches z,": lambda z, c: (lambda e, i: (z + (e - z), i))(*nearest(z, c)),
    "reaches the codebook": lambda z, c: (lambda e, i: (e + (z - z.detach()), i))(*nearest(z, c)),
    "D still in dimension 1": lambda z, c: (lambda idx: (z + (c[idx].view(z.shape[0], *z.shape[2:], -1)
                                                              .permute(0, 3, 1, 2) - z).detach(),
                                                         idx.view(z.shape[0], *z.shape[2:])))(
        torch.cdist(z.reshape(-1, z.shape[1]), c).argmin(1)),
    "permute(0, 3, 1, 2)": lambda z, c: (lambda e, i: ((z + (e - z).detach()).permute(0, 2, 3, 1), i))(*nearest(z, c)),
    "torch.long": lambda z, c: (lambda e, i: (z + (e - z).detach(), i.float()))(*nearest(z, c)),
}


def test_quantize_accepts_the_library_and_a_from_scratch_answer(capsys):
    assert verdict(exercises.check_quantize, exercises.library_quantize, capsys)[0]
    passed, out = verdict(exercises.check_quantize, quantize, capsys)
    assert passed and out.startswith("✓ quantize: ")


@pytest.mark.parametrize("mistake", list(QUANTIZE_MISTAKES))
def test_quantize_names_the_mistake(mistake, capsys):
    passed, out = verdict(exercises.check_quantize, QUANTIZE_MISTAKES[mistake], capsys)
    assert not passed and out.startswith("✗") and mistake.rstrip(",") in out, out


def test_a_stub_is_not_yet_and_an_error_is_reported_not_raised(capsys):
    for check in (exercises.check_quantize, exercises.check_perplexity, exercises.check_causal_mask,
                  exercises.check_distribution):
        passed, out = verdict(check, stub, capsys)
        assert not passed and "not yet" in out and "stub" in out
    passed, out = verdict(exercises.check_perplexity, lambda indices, K: torch.bincount(indices), capsys)
    assert not passed and "raised RuntimeError" in out


def perplexity(indices, K):
    p = torch.bincount(indices.flatten(), minlength=K).double() / indices.numel()
    p = p[p > 0]
    return math.exp(-(p * p.log()).sum())


def entropy(indices, K):
    return math.log(perplexity(indices, K))


PERPLEXITY_MISTAKES = {
    "is the entropy": entropy,
    "entropy in bits": lambda i, K: math.exp(entropy(i, K) / math.log(2)),
    "number of distinct codes": lambda i, K: len(torch.unique(i)),
    "is K": lambda i, K: K,
    "NaN": lambda i, K: (lambda p: math.exp(-(p * p.log()).sum()))(
        torch.bincount(i.flatten(), minlength=K).double() / i.numel()),
    "expected": lambda i, K: perplexity(i, K) + 0.5,
    "return one number": lambda i, K: [perplexity(i, K)],
}


def test_perplexity_accepts_the_library_and_a_from_scratch_answer(capsys):
    assert verdict(exercises.check_perplexity, exercises.library_perplexity, capsys)[0]
    assert verdict(exercises.check_perplexity, perplexity, capsys)[0]
    assert verdict(exercises.check_perplexity, lambda i, K: torch.tensor(perplexity(i, K)), capsys)[0]   # 0-d tensor


@pytest.mark.parametrize("mistake", list(PERPLEXITY_MISTAKES))
def test_perplexity_names_the_mistake(mistake, capsys):
    passed, out = verdict(exercises.check_perplexity, PERPLEXITY_MISTAKES[mistake], capsys)
    assert not passed and mistake in out, out


def mask(kernel_size, mask_type):
    k, c = kernel_size, kernel_size // 2
    m = torch.zeros(k, k)
    m[:c] = 1
    m[c, :c + (mask_type == "B")] = 1
    return m


MASK_MISTAKES = {
    "centre is visible in your type-A mask": lambda k, t: mask(k, "B"),
    "centre is hidden in your type-B mask": lambda k, t: mask(k, "A"),
    "columns instead of rows": lambda k, t: mask(k, t).T,
    "the future instead of the past": lambda k, t: mask(k, t).flip(0, 1),
    "rows below the centre are visible": lambda k, t: torch.maximum(mask(k, t), torch.eye(k)),
    "right of the centre are visible": lambda k, t: torch.ones(k, k).index_fill(0, torch.arange(k // 2 + 1, k), 0),
    "values other than 0 and 1": lambda k, t: mask(k, t) * 0.5,
    "has shape": lambda k, t: mask(k, t)[:-1],
    "hides some position": lambda k, t: mask(k, t).index_fill(0, torch.tensor([0]), 0),
}


def test_causal_mask_accepts_the_library_and_a_from_scratch_answer(capsys):
    assert verdict(exercises.check_causal_mask, causal_mask, capsys)[0]
    assert verdict(exercises.check_causal_mask, mask, capsys)[0]
    assert verdict(exercises.check_causal_mask, lambda k, t: mask(k, t).bool(), capsys)[0]


@pytest.mark.parametrize("mistake", list(MASK_MISTAKES))
def test_causal_mask_names_the_mistake(mistake, capsys):
    passed, out = verdict(exercises.check_causal_mask, MASK_MISTAKES[mistake], capsys)
    assert not passed and mistake in out, out


def probs(logits, temperature, top_k):
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return F.softmax(logits, dim=-1)


def keep_smallest(logits, temperature, top_k):
    if top_k is None:
        return F.softmax(logits / temperature, dim=-1)
    return probs(-logits, temperature, top_k) * 0 + probs(-logits, 1 / temperature, top_k).where(
        probs(-logits, 1 / temperature, top_k) == 0, F.softmax(logits / temperature, dim=-1))


DISTRIBUTION_MISTAKES = {
    "multiplied instead of divided": lambda logits, T, k: probs(logits * T * T, T, k),
    "top-k ignored": lambda logits, T, k: probs(logits, T, None),
    "softmax over the rows": lambda logits, T, k: F.softmax(logits / T, dim=0),
    "log-probabilities": lambda logits, T, k: probs(logits, T, k).log(),
    "return probabilities": lambda logits, T, k: logits / T,
    "least likely": keep_smallest,
    "renormalise": lambda logits, T, k: F.softmax(logits / T, dim=-1) * (probs(logits, T, k) > 0),
    "keeps exactly": lambda logits, T, k: probs(logits, T, None if k is None else k + 1),
    "expected the logits' shape": lambda logits, T, k: probs(logits, T, k)[0],
}


def test_distribution_accepts_the_library_and_a_from_scratch_answer(capsys):
    assert verdict(exercises.check_distribution, distribution, capsys)[0]
    assert verdict(exercises.check_distribution, probs, capsys)[0]


@pytest.mark.parametrize("mistake", list(DISTRIBUTION_MISTAKES))
def test_distribution_names_the_mistake(mistake, capsys):
    passed, out = verdict(exercises.check_distribution, DISTRIBUTION_MISTAKES[mistake], capsys)
    assert not passed and mistake in out, out


def test_the_mask_and_the_library_conv_agree():
    from vqvae_lib.pixelcnn import MaskedConv2d
    assert torch.equal(MaskedConv2d(2, 3, 5, "A").mask, causal_mask(5, "A"))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        causal_mask(4, "A")
