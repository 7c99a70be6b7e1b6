"""Devices without float64 (Apple's MPS) and autocast: without a Mac, the CPU plays one. ``utils.NO_FLOAT64_DEVICES``
gets "cpu", and a dispatch mode refuses every operation that reads or makes a float64 tensor on the CPU, as MPS
does ("Cannot convert a MPS Tensor to float64 dtype"). Under it, a training step of the VQ-VAE and of the prior
(with a validation) and both samplers must run, and the samplers must still agree."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from vqvae_lib import utils
from vqvae_lib.config import PixelCNNConfig, TrainConfig, VQVAEConfig
from vqvae_lib.metrics import reconstruction_validator
from vqvae_lib.pixelcnn import GatedPixelCNN
from vqvae_lib.prior import prior_loss, prior_validator
from vqvae_lib.sampling import distribution, next_code_distribution, sample
from vqvae_lib.train import autocast_dtype, fit
from vqvae_lib.vqvae import VQVAE, vqvae_loss


class NoFloat64(TorchDispatchMode):
    """Refuse any operation with a float64 tensor on ``device`` among its inputs or outputs."""

    def __init__(self, device: str = "cpu"):
        super().__init__()
        self.device = device

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten((args, kwargs, out))[0]:
            if isinstance(value, torch.Tensor) and value.dtype == torch.float64 and value.device.type == self.device:
                raise RuntimeError(f"{func}: a float64 tensor on {self.device}, a device without float64")
        return out


@pytest.fixture
def cpu_without_float64(monkeypatch):
    monkeypatch.setattr(utils, "NO_FLOAT64_DEVICES", {"mps", "cpu"})
    with NoFloat64("cpu"):
        yield


def test_the_mode_refuses_float64():
    with NoFloat64("cpu"), pytest.raises(RuntimeError, match="float64"):
        torch.ones(2).double()


def test_exact_dtype_follows_the_device_policy(monkeypatch):
    assert utils.exact_dtype("cpu") == torch.float64 and not utils.has_float64("mps")
    assert utils.exact_dtype(torch.device("mps")) == torch.float32
    monkeypatch.setattr(utils, "NO_FLOAT64_DEVICES", {"cpu"})
    assert utils.exact_dtype("cpu") == torch.float32


def tiny_prior(n_labels: int = 2, shape=(5, 6)) -> GatedPixelCNN:
    torch.manual_seed(0)
    cfg = PixelCNNConfig(channels=6, n_layers=3, kernel_size=3, codebook_size=7, n_labels=n_labels,
                         height=shape[0], width=shape[1])
    model = GatedPixelCNN(cfg)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
    return model


def test_both_samplers_run_and_agree_without_float64(cpu_without_float64):
    model = tiny_prior()
    labels = torch.tensor([0, 1, 1, 0])
    for options in ({}, {"temperature": 0.7}, {"temperature": 1.3, "top_k": 3}):
        fast = sample(model, 4, (5, 6), labels=labels, seed=3, **options)
        naive = sample(model, 4, (5, 6), labels=labels, seed=3, naive=True, **options)
        assert torch.equal(fast, naive)
        assert len(fast.unique()) > 2
    probs = next_code_distribution(model, fast[0], (2, 3), labels=1)
    assert probs.dtype == torch.float32 and abs(float(probs.sum()) - 1) < 1e-5


def test_the_distribution_is_float64_where_the_device_has_it():
    logits = torch.randn(3, 7)
    assert distribution(logits).dtype == torch.float64


def test_the_same_seed_gives_the_same_samples_with_and_without_float64(monkeypatch):
    """The uniforms are float32 on every device; only the inverse CDF's arithmetic changes, and for distributions
    this far from a tie the codes do not."""
    model = tiny_prior()
    with_float64 = sample(model, 4, (5, 6), labels=torch.tensor([0, 1, 0, 1]), seed=5, temperature=0.7)
    monkeypatch.setattr(utils, "NO_FLOAT64_DEVICES", {"cpu"})
    without = sample(model, 4, (5, 6), labels=torch.tensor([0, 1, 0, 1]), seed=5, temperature=0.7)
    assert torch.equal(with_float64, without)


def train_cfg() -> TrainConfig:
    return TrainConfig(batch_size=4, steps=3, lr=1e-3, warmup_steps=1, eval_every=3, seed=0)


def test_a_vqvae_trains_and_validates_without_float64(cpu_without_float64, tmp_path):
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(hidden_channels=8, res_channels=4, n_res_blocks=1, downsample=4, codebook_size=16,
                              embedding_dim=4))
    slices = torch.randint(0, 256, (12, 1, 16, 16), dtype=torch.uint8)
    result = fit(model, slices, vqvae_loss, train_cfg(), checkpoint=tmp_path / "vqvae.pt",
                 validate=reconstruction_validator(slices[:4]), meta={"kind": "vqvae"}, fingerprint="toy",
                 progress=False)
    assert result.step == 3 and 0 < result.history["val_ssim_mean"][-1] <= 1


def test_a_prior_trains_and_validates_without_float64(cpu_without_float64, tmp_path):
    model = tiny_prior(n_labels=2, shape=(4, 4))
    maps = torch.randint(0, 7, (12, 4, 4))
    labels = torch.arange(12) % 2
    result = fit(model, maps, prior_loss, train_cfg(), labels=labels, checkpoint=tmp_path / "prior.pt",
                 validate=prior_validator(maps[:4], labels[:4]), meta={"kind": "prior"}, fingerprint="toy",
                 progress=False)
    assert result.step == 3 and result.history["val_bits_per_code"][-1] > 0


def test_bf16_autocast_is_refused_where_torch_has_none():
    with pytest.raises(ValueError, match="precision='bf16'.*mps"):
        autocast_dtype(TrainConfig(precision="bf16"), torch.device("mps"))
    assert autocast_dtype(TrainConfig(precision="auto"), torch.device("mps")) is None


def test_sampling_switches_tf32_off_on_cuda_and_back_after():
    """On a GPU, TF32 would round the naive sampler's convolutions and the fast one's products differently; the
    flags need no GPU to be set, so the switch is checked here; on other devices it touches nothing."""
    from vqvae_lib.sampling import full_precision

    backends = torch.backends
    saved = backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32
    try:
        backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = True, True
        with full_precision(torch.device("cpu")):
            assert backends.cudnn.allow_tf32 and backends.cuda.matmul.allow_tf32
        with full_precision(torch.device("cuda")):
            assert not backends.cudnn.allow_tf32 and not backends.cuda.matmul.allow_tf32
        assert backends.cudnn.allow_tf32 and backends.cuda.matmul.allow_tf32
    finally:
        backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = saved
