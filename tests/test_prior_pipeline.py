"""The prior's pipeline and CLI end to end on tiny data: train, resume, load, sample a PNG grid; a prior is
refused next to a VQ-VAE checkpoint other than the one whose codes it learned."""
import json

import pytest
import torch
from conftest import tiny_imagefolder
from PIL import Image

from vqvae_lib import pipeline
from vqvae_lib.cli import main
from vqvae_lib.codemaps import load_code_maps
from vqvae_lib.config import TrainConfig, get_profile
from vqvae_lib.data import load_dataset
from vqvae_lib.prior import likelihood_table
from vqvae_lib.sample_quality import compare_priors
from vqvae_lib.sampling import code_support, default_labels, labels_in_proportion, support_for
from vqvae_lib.sampling import sample as sample_codes
from vqvae_lib.train import load_checkpoint


@pytest.fixture
def tiny_source(tmp_path, monkeypatch):
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path / "home"))  # caches and runs stay in tmp
    return tiny_imagefolder(tmp_path / "slices", (16, 16), (4, 3), textured=True)


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_train_prior_and_sample(tiny_source, tmp_path, capsys):
    run, vqvae = tmp_path / "run", str(tmp_path / "run" / "vqvae.pt")
    assert main(["train-vqvae", "--data", str(tiny_source), "--image-size", "16", "--profile", "smoke",
                 "--steps", "2", "--batch-size", "4", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    train = ["train-prior", "--vqvae", vqvae, "--data", str(tiny_source), "--profile", "smoke", "--steps", "3",
             "--batch-size", "4", "--out", str(run), "--no-progress"]
    assert main(train) == 0
    summary = last_json(capsys)
    assert summary["steps"] == 3 and summary["labels"] == ["a", "b"] and summary["val_bits_per_code"] > 0
    ckpt = load_checkpoint(run / "prior.pt")
    assert ckpt["meta"]["kind"] == "prior" and ckpt["meta"]["latent_shape"] == [4, 4]
    assert ckpt["meta"]["config"]["n_labels"] == 2 and ckpt["meta"]["config"]["codebook_size"] == 64
    assert (run / "prior_history.json").is_file()

    sample = ["sample", "--vqvae", vqvae, "--prior", str(run / "prior.pt"), "-n", "4", "--label", "b",
              "--top-k", "8", "--seed", "1", "--out", str(tmp_path / "grids" / "fast.png")]
    assert main(sample) == 0
    timing = last_json(capsys)
    assert timing["sampler"] == "fast" and timing["labels"] == ["b"] * 4 and timing["seed"] == 1
    assert timing["top_k"] == 8 and timing["n"] == 4
    assert timing["latent_shape"] == [4, 4]
    assert Image.open(tmp_path / "grids" / "fast.png").size == (38, 38)       # a 2 x 2 grid of 16 px, 2 px padding
    assert main(sample[:-1] + [str(tmp_path / "naive.png"), "--naive"]) == 0
    assert last_json(capsys)["sampler"] == "naive"
    assert (tmp_path / "naive.png").read_bytes() == (tmp_path / "grids" / "fast.png").read_bytes()

    assert main(["c" if arg == "b" else arg for arg in sample]) == 2
    assert "neither a label" in capsys.readouterr().err
    assert main([arg for arg in sample if arg not in ("--label", "b")]) == 0    # every label in turn
    assert last_json(capsys)["labels"] == ["a", "b", "a", "b"]
    defaults = [arg for arg in sample if arg not in ("--top-k", "8")]
    assert main(defaults) == 0                                                  # the profile's sampling settings
    profile = get_profile().sampling
    timing = last_json(capsys)
    assert timing["top_k"] == profile.top_k and timing["temperature"] == profile.temperature
    assert main([*sample, "--top-k", "0", "--temperature", "1.3"]) == 0         # 0: every code (overrides the 8)
    timing = last_json(capsys)
    assert timing["top_k"] is None and timing["temperature"] == 1.3
    assert main([*defaults, "--top-k", "-3"]) == 2
    assert "--top-k" in capsys.readouterr().err



def test_train_prior_saves_the_code_support_and_sample_honours_it(tiny_source, tmp_path, capsys):
    run, vqvae = tmp_path / "run", str(tmp_path / "run" / "vqvae.pt")
    assert main(["train-vqvae", "--data", str(tiny_source), "--image-size", "16", "--profile", "smoke",
                 "--steps", "2", "--batch-size", "4", "--out", str(run), "--no-progress"]) == 0
    train = ["train-prior", "--vqvae", vqvae, "--data", str(tiny_source), "--profile", "smoke", "--steps", "2",
             "--batch-size", "4", "--out", str(run), "--no-progress"]
    assert main(train) == 0
    maps = load_code_maps(vqvae, str(tiny_source), "train")
    prior = pipeline.load_prior(run / "prior.pt", vqvae_path=vqvae)
    assert prior.code_support.shape == (2, 4, 4, 64)                          # (labels, h, w, K)
    assert torch.equal(prior.code_support, code_support(maps.indices, 64, maps.labels, 2))
    assert 0 < prior.code_support.sum() < prior.code_support.numel()
    assert torch.equal(prior.label_counts, torch.bincount(maps.labels, minlength=2))  # saved beside it: the
    assert torch.equal(default_labels(prior, 6), labels_in_proportion(prior.label_counts, 6))  # default mix

    out = tmp_path / "samples"
    sample = ["sample", "--vqvae", vqvae, "--prior", str(run / "prior.pt"), "-n", "6", "--top-k", "0",
              "--support", "label", "--out", str(tmp_path / "grid.png"), "--save-dir", str(out)]
    capsys.readouterr()
    assert main(sample) == 0
    assert last_json(capsys)["support"] == "label"
    assert json.loads((out / "samples.json").read_text())["samples"][0]["support"] == "label"
    assert main([*sample[:-2], "--support", "none"]) == 0                    # any code
    assert last_json(capsys)["support"] == "none"
    labels = torch.arange(6) % 2
    kept = sample_codes(prior, 6, labels=labels, support=support_for(prior, "label"))
    free = sample_codes(prior, 6, labels=labels)                             # the same seed, any code
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    assert prior.code_support[labels[:, None, None], rows, cols, kept].all()
    assert not prior.code_support[labels[:, None, None], rows, cols, free].all()

    (run / "prior-support.pt").unlink()                                      # a prior trained before supports
    old = pipeline.load_prior(run / "prior.pt", vqvae_path=vqvae)
    assert old.label_counts is None and default_labels(old, 5).tolist() == [0, 1, 0, 1, 0]  # each label in turn
    assert main(sample) == 2
    assert "no code support" in capsys.readouterr().err
    assert main(train) == 0                                                  # the finished run writes it again
    assert (run / "prior-support.pt").is_file()

def test_a_prior_of_another_vqvae_checkpoint_is_refused(tiny_source, tmp_path, capsys):
    run, vqvae = tmp_path / "run", str(tmp_path / "run" / "vqvae.pt")
    vqvae_args = ["train-vqvae", "--data", str(tiny_source), "--image-size", "16", "--profile", "smoke",
                  "--steps", "2", "--batch-size", "4", "--out", str(run), "--no-progress"]
    assert main(vqvae_args) == 0
    prior_args = ["train-prior", "--vqvae", vqvae, "--data", str(tiny_source), "--profile", "smoke", "--steps",
                  "2", "--batch-size", "4", "--out", str(run), "--no-progress"]
    assert main(prior_args) == 0
    vqvae_args[vqvae_args.index("--steps") + 1] = "3"
    assert main([*vqvae_args, "--extend"]) == 0                     # the VQ-VAE trains on: new codes
    capsys.readouterr()
    assert main(prior_args) == 2
    assert "fingerprint" in capsys.readouterr().err
    assert main(["sample", "--vqvae", vqvae, "--prior", str(run / "prior.pt"), "--label", "a",
                 "--out", str(tmp_path / "x.png")]) == 2
    message = capsys.readouterr().err
    assert "prior.pt" in message and "delete" in message
    with pytest.raises(ValueError, match="not a prior checkpoint"):
        pipeline.load_prior(vqvae)


def test_load_or_train_prior_trains_once_then_loads(tiny_source):
    quick = TrainConfig(batch_size=4, steps=3, warmup_steps=0, eval_every=0, checkpoint_every=0)
    profile = get_profile("smoke").replace(image_size=16, vqvae_train=quick, prior_train=quick)
    model, result = pipeline.load_or_train_prior(profile, str(tiny_source), progress=False)
    run = pipeline.default_run_dir(profile, str(tiny_source))
    assert result.step == 3 and result.start_step == 0 and (run / "prior.pt").is_file()
    assert model.latent_shape == (4, 4) and model.label_names == ["a", "b"] and not model.training
    again, second = pipeline.load_or_train_prior(profile, str(tiny_source), progress=False)
    assert second.start_step == 3
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])
    loaded = pipeline.load_prior(run / "prior.pt", torch.device("cpu"), vqvae_path=run / "vqvae.pt")
    assert loaded.label_kind == "class" and loaded.config == model.config

    train_maps = pipeline.profile_code_maps(profile, str(tiny_source), "train")
    test_maps = load_code_maps(run / "vqvae.pt", str(tiny_source), "validate", device=torch.device("cpu"))
    assert train_maps.key == load_code_maps(run / "vqvae.pt", str(tiny_source), "train").key
    table = likelihood_table(loaded, train_maps, test_maps)
    assert set(table) == {"uniform", "independent", "pixelcnn"}
    assert table["uniform"]["bits_per_code"] == pytest.approx(6.0)      # K = 64
    assert table["pixelcnn"]["bits_per_image"] == pytest.approx(16 * table["pixelcnn"]["bits_per_code"])

    vqvae = pipeline.load_vqvae(run / "vqvae.pt", torch.device("cpu"))
    train_images = load_dataset(str(tiny_source), "train", 16).images
    real_images = torch.cat([load_dataset(str(tiny_source), split, 16).images
                             for split in ("validate", "test")])                # 4 held-out slices
    quality = compare_priors(vqvae, loaded, train_maps, train_images, real_images, n=2, top_k=5)
    assert set(quality) == {"pixelcnn", "independent", "real"}
    assert all(row["n"] == 2 and -1 <= row["nn_ssim_mean"] <= 1 for row in quality.values())


def test_a_prior_variant_trains_its_steps_beside_the_profile_vqvae_then_loads(tiny_source):
    quick = TrainConfig(batch_size=4, steps=3, warmup_steps=0, eval_every=0, checkpoint_every=0)
    profile = get_profile("smoke").replace(image_size=16, vqvae_train=quick, prior_train=quick)
    run = pipeline.load_or_train_prior_variant(profile, str(tiny_source), "layers-2", steps=4, n_layers=2,
                                               progress=False)
    folder = pipeline.default_run_dir(profile, str(tiny_source))
    assert (folder / "vqvae.pt").is_file() and (folder / "prior-variants" / "layers-2" / "prior.pt").is_file()
    assert run.step == 4 and run.model.config.n_layers == 2 and run.model.config.channels == profile.prior.channels
    again = pipeline.load_or_train_prior_variant(profile, str(tiny_source), "layers-2", steps=4, n_layers=2,
                                                 progress=False)
    assert again.start_step == 4 and not (folder / "prior.pt").exists()    # loaded; the profile's prior untouched
    with pytest.raises(ValueError, match="steps must be >= 1"):
        pipeline.load_or_train_prior_variant(profile, str(tiny_source), "none", steps=0)
