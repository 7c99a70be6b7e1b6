"""Vector quantizer: nearest codes, the loss terms through their gradients, EMA, init and restarts."""
import math
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from vqvae_lib.config import VQVAEConfig
from vqvae_lib.quantizer import USAGE_DECAY, VectorQuantizer, kmeans


def as_map(z_flat, h, w):
    """(B*h*w, D) rows -> (B, D, h, w), the inverse of the quantizer's flattening."""
    D = z_flat.shape[1]
    return z_flat.view(-1, h, w, D).permute(0, 3, 1, 2).contiguous()


def brute_force_nearest(z_flat, codes):
    return ((z_flat[:, None, :] - codes[None, :, :]) ** 2).sum(-1).argmin(1)


def clusters(gen, centers, per_cluster, std=0.05):
    """per_cluster points around each of centers (C, D), shuffled: (C*per_cluster, D)."""
    points = centers.repeat_interleave(per_cluster, 0)
    points = points + std * torch.randn(points.shape, generator=gen)
    return points[torch.randperm(len(points), generator=gen)]


def test_nearest_code_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    q = VectorQuantizer(16, 4).eval()
    with torch.no_grad():
        q.codebook.copy_(torch.randn(16, 4, generator=gen))
    z_e = torch.randn(3, 4, 5, 6, generator=gen)
    out = q(z_e)
    z_flat = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    expected = brute_force_nearest(z_flat, q.codebook.detach())
    assert out.indices.shape == (3, 5, 6) and out.indices.dtype == torch.long
    assert torch.equal(out.indices.flatten(), expected)
    assert torch.allclose(out.quantized, q.lookup(out.indices), atol=1e-6)
    assert torch.equal(q.nearest(z_e), out.indices)


def test_straight_through_gradient_is_identity():
    q = VectorQuantizer(8, 3)
    z_e = torch.randn(2, 3, 4, 4, requires_grad=True)
    q(z_e).quantized.mul(torch.arange(3.0).view(1, 3, 1, 1)).sum().backward()
    assert torch.equal(z_e.grad, torch.arange(3.0).view(1, 3, 1, 1).expand(2, 3, 4, 4))


def loss_gradients(beta, codes, z_e):
    q = VectorQuantizer(codes.shape[0], codes.shape[1], beta=beta)
    with torch.no_grad():
        q.codebook.copy_(codes)
    z_e = z_e.clone().requires_grad_(True)
    out = q(z_e)
    out.loss.backward()
    return z_e.grad, q.codebook.grad, out


@pytest.mark.parametrize("beta", [0.25, 1.0])
def test_beta_multiplies_the_commitment_term(beta):
    gen = torch.Generator().manual_seed(1)
    codes, z_e = torch.randn(6, 3, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
    z_grad, codebook_grad, out = loss_gradients(beta, codes, z_e)

    # references: d mse(z_e, e) / d z_e  and  d mse(e, z_e) / d e, for the chosen codes e
    z_ref = z_e.clone().requires_grad_(True)
    codes_ref = codes.clone().requires_grad_(True)
    e = codes_ref[out.indices].permute(0, 3, 1, 2)  # (B, D, h, w)
    F.mse_loss(z_ref, e.detach()).backward()
    F.mse_loss(e, z_ref.detach()).backward()

    assert torch.allclose(z_grad, beta * z_ref.grad, atol=1e-7)
    assert torch.allclose(codebook_grad, codes_ref.grad, atol=1e-7)
    assert torch.allclose(out.loss, out.codebook_loss + beta * out.commitment_loss)
    assert torch.allclose(out.commitment_loss, out.codebook_loss)  # same value, different gradients


def test_only_the_encoder_gradient_scales_with_beta():
    gen = torch.Generator().manual_seed(2)
    codes, z_e = torch.randn(6, 3, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
    z_small, cb_small, _ = loss_gradients(0.25, codes, z_e)
    z_big, cb_big, _ = loss_gradients(1.0, codes, z_e)
    assert z_small.abs().sum() > 0 and cb_small.abs().sum() > 0
    assert torch.allclose(z_big, 4 * z_small, atol=1e-7)
    assert torch.allclose(cb_big, cb_small, atol=1e-7)


def test_ema_update_matches_the_formula():
    g, eps = 0.9, 1e-5
    q = VectorQuantizer(3, 2, beta=0.5, ema=True, ema_decay=g, ema_epsilon=eps)
    codes = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])
    size0 = torch.tensor([2.0, 1.0, 0.5])
    embed_sum0 = torch.tensor([[0.5, 0.0], [9.0, 11.0], [-5.0, 5.0]])
    with torch.no_grad():
        q.codebook.copy_(codes)
    q.ema_cluster_size.copy_(size0)
    q.ema_embed_sum.copy_(embed_sum0)
    z_flat = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0], [-1.0, 0.0]])  # codes 0, 0, 1, 0

    out = q(as_map(z_flat, 2, 2))

    n = torch.tensor([3.0, 1.0, 0.0])                                # vectors per code
    sums = torch.tensor([[0.0, 1.0], [9.0, 9.0], [0.0, 0.0]])        # their sums
    size = g * size0 + (1 - g) * n
    embed_sum = g * embed_sum0 + (1 - g) * sums
    total = size.sum()
    smoothed = (size + eps) / (total + 3 * eps) * total
    assert torch.equal(out.indices.flatten(), torch.tensor([0, 0, 1, 0]))
    assert torch.allclose(q.ema_cluster_size, size)
    assert torch.allclose(q.ema_embed_sum, embed_sum)
    assert torch.allclose(q.codebook, embed_sum / smoothed[:, None])
    assert not q.codebook.requires_grad
    assert out.codebook_loss == 0
    assert torch.allclose(out.commitment_loss, F.mse_loss(z_flat, codes[[0, 0, 1, 0]]))  # old codes
    assert torch.allclose(out.loss, 0.5 * out.commitment_loss)


def test_perplexity_and_active_codes():
    q = VectorQuantizer(4, 1).eval()
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    out = q(as_map(torch.tensor([[0.1], [0.1], [2.9], [3.1]]), 2, 2))
    assert out.active_codes == 2
    assert torch.allclose(out.perplexity, torch.tensor(2.0))
    out = q(as_map(torch.tensor([[0.0], [1.0], [2.0], [3.0]]), 2, 2))
    assert out.active_codes == 4
    assert torch.allclose(out.perplexity, torch.tensor(4.0))


@pytest.mark.parametrize("n_vectors", [100, 5])
def test_data_init_puts_codes_on_encoder_outputs(n_vectors):
    gen = torch.Generator().manual_seed(3)
    z_flat = 3 + torch.randn(n_vectors, 2, generator=gen)
    torch.manual_seed(0)
    q = VectorQuantizer(8, 2, init="data")
    assert not q.initialized
    q(as_map(z_flat, 1, 1))
    assert q.initialized
    distance = torch.cdist(q.codebook.detach(), z_flat).min(1).values  # (K,)
    assert distance.max() < 1e-6
    before = q.codebook.detach().clone()
    q(as_map(z_flat + 100, 1, 1))
    assert torch.equal(q.codebook.detach(), before)  # initialised once only


def test_kmeans_init_finds_the_clusters():
    gen = torch.Generator().manual_seed(4)
    centers = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
    z_flat = clusters(gen, centers, 50)
    torch.manual_seed(0)
    q = VectorQuantizer(16, 2, init="kmeans")
    q(as_map(z_flat, 1, 1))
    code_to_center = torch.cdist(q.codebook.detach(), centers).min(1).values  # (K,)
    center_to_code = torch.cdist(centers, q.codebook.detach()).min(1).values  # (4,)
    assert code_to_center.max() < 0.3  # every code is a cluster mean ...
    assert center_to_code.max() < 0.3  # ... and every cluster has a code


def test_lloyd_iterations_never_increase_the_distortion():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(300, 3, generator=gen)

    def distortion(iters):
        torch.manual_seed(0)  # the same starting centroids
        return torch.cdist(x, kmeans(x, 10, iters=iters)).min(1).values.pow(2).mean()

    d = [distortion(i) for i in (0, 1, 5, 10)]
    assert all(later <= earlier + 1e-6 for earlier, later in pairwise(d))
    assert d[-1] < d[0]


def far_codebook(ema):
    """8 codes: code 0 at the data, codes 1..7 far away; data around the origin."""
    q = VectorQuantizer(8, 2, ema=ema, restart_dead=True)
    with torch.no_grad():
        q.codebook.copy_(torch.cat([torch.zeros(1, 2), torch.full((7, 2), 1000.0)]))
    if ema:
        q.ema_embed_sum.copy_(q.codebook)
    gen = torch.Generator().manual_seed(6)
    return q, torch.randn(64, 2, generator=gen)


def unused_batches_until_restart() -> int:
    """Batches a code must go unused before it is restarted: its usage falls from a fair share 1 / K by
    ``USAGE_DECAY`` per batch until it is below ``dead_share`` of that (0.7^8 < 1/16 <= 0.7^7)."""
    return math.ceil(math.log(1 / 16) / math.log(USAGE_DECAY) + 1e-9)


@pytest.mark.parametrize("ema", [False, True])
@pytest.mark.parametrize("batch", [16, 64])
def test_dead_code_restart_revives_unused_codes(ema, batch):
    """A code missing from a batch is not restarted at once; one unused for 8 batches is, whatever the
    batch size (the rule counts shares of the vectors, not vectors)."""
    q, z_flat = far_codebook(ema)
    torch.manual_seed(0)
    wait = unused_batches_until_restart()
    assert wait == 8
    for step in range(1, wait + 1):
        out = q(as_map(z_flat[:batch], batch // 8, 8))
        assert out.active_codes == 1
        assert int(q.restarts) == (7 if step == wait else 0), step
    distance = torch.cdist(q.codebook.detach(), z_flat).min(1).values  # (K,)
    assert distance[1:].max() < 0.2  # every restarted code now sits next to a data point
    assert torch.allclose(q.usage[1:], torch.full((7,), 1 / 8))  # restarted codes start at a fair share again
    q.eval()
    assert q(as_map(z_flat, 8, 8)).active_codes > 4
    if ema:
        assert torch.allclose(q.ema_embed_sum[1:] / q.ema_cluster_size[1:, None], q.codebook[1:])


@pytest.mark.parametrize("batch", [32, 128])
def test_a_rarely_used_code_lives_or_dies_by_its_share_not_by_the_batch_size(batch):
    """Code 1 gets 1 vector in 64 (half of them at batch 32: one vector every second batch; two a batch at 128):
    1/8 of a fair share 1/8, above the 1/16 that makes a code dead, so it is never restarted at either size."""
    q, _ = far_codebook(ema=False)
    with torch.no_grad():
        q.codebook[1] = torch.tensor([10.0, 10.0])
    gen = torch.Generator().manual_seed(7)
    for step in range(60):
        z = torch.randn(batch, 2, generator=gen)                        # near code 0
        rare = batch // 64 if batch >= 64 else step % 2                 # code 1's vectors this batch
        z[:rare] = torch.tensor([10.0, 10.0]) + 0.01 * torch.randn(rare, 2, generator=gen)
        q(as_map(z, batch // 8, 8))
    assert int(q.restarts) >= 6                                            # codes 2-7, unused, were restarted
    assert q.codebook[1].tolist() == [10.0, 10.0]                          # code 1 was never restarted


def test_restart_dead_codes_counts_and_spares_live_codes():
    q, z_flat = far_codebook(ema=False)
    fair = 1 / 8                                      # dead below dead_share (1/16) of a fair share: 1/128
    q.usage.copy_(torch.tensor([0.5, 0.005, 0.1, 0.0, 1 / 128, 0.2, 0.0075, 0.18]))
    before = q.codebook.detach().clone()
    assert q.dead_codes().tolist() == [1, 3, 6]
    assert q.restart_dead_codes(z_flat) == 3
    moved = (q.codebook.detach() != before).any(1)
    assert moved.tolist() == [False, True, False, True, False, False, True, False]
    assert q.usage[[1, 3, 6]].tolist() == [fair] * 3
    assert q.restart_dead_codes(z_flat) == 0


def test_no_restart_when_disabled():
    q, z_flat = far_codebook(ema=False)
    q.restart_dead = False
    q(as_map(z_flat, 8, 8))
    assert int(q.restarts) == 0
    assert (q.codebook[1:] == 1000).all()


def test_sampling_follows_the_global_seed():
    gen = torch.Generator().manual_seed(7)
    z_e = torch.randn(4, 3, 4, 4, generator=gen)

    def run():
        torch.manual_seed(123)
        q = VectorQuantizer(32, 3, ema=True, init="data", restart_dead=True)
        for _ in range(3):
            q(z_e)
        return q.codebook.detach().clone()

    assert torch.equal(run(), run())


def test_eval_mode_changes_no_state():
    gen = torch.Generator().manual_seed(8)
    q = VectorQuantizer(16, 3, ema=True, init="kmeans", restart_dead=True, dead_share=0.99).eval()
    q.usage.zero_()                                   # every code would be restarted in training
    before = {k: v.clone() for k, v in q.state_dict().items()}
    for _ in range(3):
        q(torch.randn(2, 3, 4, 4, generator=gen))
    after = q.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not q.initialized


def test_from_config_and_bad_input():
    cfg = VQVAEConfig(codebook_size=32, embedding_dim=8, beta=0.3, ema=False, codebook_init="kmeans")
    q = VectorQuantizer.from_config(cfg)
    assert q.codebook.shape == (32, 8)
    assert (q.beta, q.ema, q.init) == (0.3, False, "kmeans")
    assert q.codebook.requires_grad
    with pytest.raises(ValueError, match="8"):
        q(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match="init"):
        VectorQuantizer(4, 2, init="zeros")


def test_sonnet_codebook_init_and_debiased_ema():
    torch.manual_seed(0)
    vq = VectorQuantizer.from_config(VQVAEConfig.reference()).train()
    bound = (3 / 64) ** 0.5                                                # VarianceScaling, fan_in = D
    assert vq.codebook.abs().max() <= bound and vq.codebook.abs().max() > 0.9 * bound
    assert vq.ema_cluster_size.sum() == 0 and vq.ema_embed_sum.abs().sum() == 0   # EMA starts at zero
    z_flat = torch.randn(2 * 4 * 4, 64)
    codes = vq.codebook.clone()
    hit = brute_force_nearest(z_flat, codes)
    vq(as_map(z_flat, 4, 4))
    # after one debiased update every code is the mean of its vectors (eps aside); unhit codes go to 0
    for k in range(vq.codebook_size):
        members = z_flat[hit == k]
        expected = members.mean(0) if len(members) else torch.zeros(64)
        assert torch.allclose(vq.codebook[k], expected, atol=1e-3), k
    assert int(vq.ema_updates) == 1


def test_beta_on_the_codebook_term_as_misha_has_it():
    torch.manual_seed(0)
    paper = VectorQuantizer(16, 4, beta=0.25)
    misha = VectorQuantizer(16, 4, beta=0.25, beta_term="codebook")
    misha.load_state_dict(paper.state_dict())
    z = torch.randn(2, 4, 3, 3)
    a, b = paper(z), misha(z)
    assert torch.allclose(a.codebook_loss, b.codebook_loss) and torch.allclose(a.commitment_loss, b.commitment_loss)
    assert torch.allclose(a.loss, a.codebook_loss + 0.25 * a.commitment_loss)
    assert torch.allclose(b.loss, 0.25 * b.codebook_loss + b.commitment_loss)
    with pytest.raises(ValueError, match="beta_term"):
        VQVAEConfig(beta_term="both")
    with pytest.raises(ValueError, match="ema_debias"):
        VQVAEConfig(ema_debias=True)                                        # with data init and restarts
