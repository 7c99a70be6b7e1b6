"""Mixed precision and the speed options: bf16 autocast trains the encoder and decoder in bf16 while the
quantizer's distances, losses and EMA statistics stay fp32; channels_last changes the layout, not the result."""
import pytest
import torch
from test_train import small_cfg, tiny_vqvae_setup

from vqvae_lib import train
from vqvae_lib.config import TrainConfig
from vqvae_lib.quantizer import VectorQuantizer
from vqvae_lib.train import autocast_dtype, fit
from vqvae_lib.vqvae import vqvae_loss


def test_quantizer_is_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    vq = VectorQuantizer(64, 8, ema=True, init="data", restart_dead=True).train()
    z = torch.randn(4, 8, 6, 6)
    reference = VectorQuantizer(64, 8, ema=True, init="data", restart_dead=True).train()
    reference.load_state_dict(vq.state_dict())
    torch.manual_seed(1)
    expected = reference(z)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vq(z.bfloat16())  # what a bf16 encoder hands over
    # bf16 rounding of z itself may move a vector whose two nearest codes are almost equally far
    assert (out.indices == expected.indices).float().mean() > 0.95
    for tensor in (out.quantized, out.loss, out.commitment_loss):
        assert tensor.dtype == torch.float32
    for name, buffer in vq.state_dict().items():
        if buffer.is_floating_point():
            assert buffer.dtype == torch.float32, name
    with torch.autocast("cpu", dtype=torch.bfloat16):
        again = vq.nearest(z)  # fp32 input: the argmin is exactly the fp32 one
    assert torch.equal(again, vq.eval().nearest(z))


def test_bf16_training_runs_the_network_in_bf16_and_the_quantizer_in_fp32():
    model, slices = tiny_vqvae_setup()
    seen = {}

    def loss_fn(net, batch, labels):
        out = net(batch.float() / 255)
        seen.update(reconstruction=out.reconstruction.dtype, quantized=out.vq.quantized.dtype, loss=out.loss.dtype)
        return out.loss, {}

    result = fit(model, slices, loss_fn, small_cfg(steps=6, eval_every=0, precision="bf16"), progress=False)
    assert seen == {"reconstruction": torch.bfloat16, "quantized": torch.float32, "loss": torch.float32}
    assert all(torch.isfinite(torch.tensor(result.history["loss"])))
    assert all(p.dtype == torch.float32 for p in model.parameters()), "weights stay fp32 (autocast, not .half())"


def test_precision_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(TrainConfig(precision="auto"), cpu) is None
    assert autocast_dtype(TrainConfig(precision="fp32"), cuda) is None
    assert autocast_dtype(TrainConfig(precision="bf16"), cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")


def test_channels_last_changes_the_layout_not_the_result():
    cfg = small_cfg(steps=4, eval_every=0)
    plain = fit(tiny_vqvae_setup()[0], tiny_vqvae_setup()[1], vqvae_loss, cfg, progress=False)
    model, slices = tiny_vqvae_setup()
    nhwc = fit(model, slices, vqvae_loss, small_cfg(steps=4, eval_every=0, channels_last=True), progress=False)
    conv = model.encoder.conv.weight  # (C, C, 3, 3)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert torch.allclose(torch.tensor(plain.history["loss"]), torch.tensor(nhwc.history["loss"]), rtol=1e-3)


def test_compile_keeps_the_checkpoint_names_and_the_losses(tmp_path):
    cfg = small_cfg(steps=3, eval_every=0, checkpoint_every=0)
    eager = fit(tiny_vqvae_setup()[0], tiny_vqvae_setup()[1], vqvae_loss, cfg, progress=False)
    model, slices = tiny_vqvae_setup()
    compiled = fit(model, slices, vqvae_loss, small_cfg(steps=3, eval_every=0, checkpoint_every=0,
                                                              compile=True), checkpoint=tmp_path / "c.pt",
                   progress=False)
    assert set(train.load_checkpoint(tmp_path / "c.pt")["model"]) == set(eager.model.state_dict())
    assert torch.allclose(torch.tensor(eager.history["loss"]), torch.tensor(compiled.history["loss"]), rtol=1e-3)
