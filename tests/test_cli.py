"""The CLI trains, resumes and evaluates end to end on tiny data; bad input gets a clear message."""
import itertools
import json

import numpy as np
import pytest
import torch
from conftest import tiny_imagefolder
from PIL import Image

from vqvae_lib import pipeline
from vqvae_lib import train as training
from vqvae_lib.cli import main
from vqvae_lib.config import get_profile
from vqvae_lib.data import load_dataset
from vqvae_lib.sample_quality import CRITIC_REPEATS, load_samples, measure
from vqvae_lib.train import load_checkpoint


@pytest.fixture
def tiny_source(tmp_path, monkeypatch):
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path / "home"))  # caches and runs stay in tmp
    return tiny_imagefolder(tmp_path / "slices", (40, 32), (8, 6), textured=False)


def test_train_resume_and_evaluate(tiny_source, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train-vqvae", "--data", str(tiny_source), "--image-size", "32", "--profile", "smoke",
            "--steps", "4", "--batch-size", "4", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["steps"] == 4 and (out / "vqvae.pt").is_file() and (out / "history.json").is_file()
    ckpt = load_checkpoint(out / "vqvae.pt")
    assert ckpt["step"] == 4 and ckpt["meta"]["image_size"] == 32

    args[args.index("--steps") + 1] = "7"
    assert main(args) == 2  # another budget for a finished run: refused unless asked for
    assert "steps=4" in capsys.readouterr().err
    assert main([*args, "--extend"]) == 0  # resumes from step 4
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 7
    assert load_checkpoint(out / "vqvae.pt")["history"]["step"] == list(range(1, 8))

    assert main(["evaluate", "--checkpoint", str(out / "vqvae.pt"), "--data", str(tiny_source), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"ssim_mean", "ssim_brain_mean", "psnr_mean", "mse", "perplexity", "active_codes",
                           "n_images", "split", "split_kind", "leakage_share_ssim_0.9"}
    assert scores["n_images"] == 2 and scores["split"] == "test"  # the seeded 10 % test part of 20 slices
    assert scores["split_kind"] == "by file" and 0.0 <= scores["leakage_share_ssim_0.9"] <= 1.0
    model = pipeline.load_vqvae(out / "vqvae.pt", torch.device("cpu"))          # the CLI scores what the library does
    expected = pipeline.evaluate_vqvae(model, str(tiny_source), "test").summary()
    for key in ("ssim_mean", "ssim_brain_mean", "psnr_mean", "active_codes"):
        assert scores[key] == pytest.approx(expected[key]), key
    assert scores["ssim_brain_mean"] < scores["ssim_mean"]                      # the black background flatters

    evaluate = ["evaluate", "--checkpoint", str(out / "vqvae.pt"), "--data", str(tiny_source), "--json"]
    assert main([*evaluate, "--split", "all"]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 20
    assert main([*evaluate, "--split", "train"]) == 0  # every training slice has itself in training
    assert json.loads(capsys.readouterr().out)["leakage_share_ssim_0.9"] == 1.0
    assert main([*evaluate, "--group-by", r"/(\d+)\.png$"]) == 2  # trained by file: its test split is not held out
    assert "trained on a split by file" in capsys.readouterr().err

    grouped_run = tmp_path / "grouped"                                # a/3.png and b/3.png: group "3"
    assert main(["train-vqvae", "--data", str(tiny_source), "--image-size", "32", "--profile", "smoke",
                 "--steps", "2", "--batch-size", "4", "--group-by", r"/(\d+)\.png$", "--out", str(grouped_run),
                 "--no-progress"]) == 0
    capsys.readouterr()
    evaluate = ["evaluate", "--checkpoint", str(grouped_run / "vqvae.pt"), "--data", str(tiny_source), "--json"]
    assert main(evaluate) == 0                                        # the checkpoint's own grouping
    grouped = json.loads(capsys.readouterr().out)
    assert grouped["split_kind"] == r"by group (/(\d+)\.png$)" and grouped["n_images"] == 2
    assert main([*evaluate, "--group-by", r"^(\w+)/"]) == 2           # another grouping: refused
    assert "group_by" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 3 groups"):         # the class folders: 2 groups, too few
        load_dataset(str(tiny_source), "test", 32, group_by=r"^(\w+)/")


def test_the_seed_decides_the_initial_weights_and_the_first_steps(tiny_source, tmp_path, capsys):
    def run(name: str, seed: str):
        out = tmp_path / name
        assert main(["train-vqvae", "--data", str(tiny_source), "--image-size", "32", "--profile", "smoke",
                     "--steps", "2", "--batch-size", "4", "--seed", seed, "--out", str(out), "--no-progress"]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["seed"] == int(seed)
        return load_checkpoint(out / "vqvae.pt")

    torch.manual_seed(123)  # whatever ran before in this process
    first = run("a", "5")
    torch.manual_seed(456)
    again, other = run("b", "5"), run("c", "6")
    assert first["history"]["loss"] == again["history"]["loss"]
    for name, tensor in first["model"].items():
        assert torch.equal(tensor, again["model"][name]), name
    assert first["history"]["loss"][0] != other["history"]["loss"][0]
    assert not torch.equal(first["model"]["decoder.up.1.weight"], other["model"]["decoder.up.1.weight"])


def test_minutes_budget_and_reference_model(tiny_source, tmp_path, capsys, monkeypatch):
    ticks = itertools.count()
    monkeypatch.setattr(training, "perf_counter", lambda: 0.005 * next(ticks))   # every training step takes 0.005 s
    out = tmp_path / "ref"
    assert main(["train-vqvae", "--data", str(tiny_source), "--image-size", "32", "--model", "reference",
                 "--minutes", "0.002", "--batch-size", "4", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    planned = int(training.PLAN_MARGIN * 0.12 / 0.005)                             # the time budget, as steps
    assert (summary["stopped"], summary["steps"]) == ("minutes", planned)
    model = pipeline.load_vqvae(out / "vqvae.pt", torch.device("cpu"))
    assert model.config.hidden_channels == 128 and model.config.codebook_init == "scaled"
    assert model.config.ema_debias and (model.config.input_offset, model.config.input_scale) == (0.5, 1.0)
    train = load_dataset(str(tiny_source), "train", 32).images.float() / 255
    assert model.config.recon_divisor == pytest.approx(float(train.var()))   # the data's own variance


def test_misha_baseline_is_configured_as_its_author_did(tiny_source, tmp_path, capsys):
    out = tmp_path / "misha"
    assert main(["train-vqvae", "--data", str(tiny_source), "--image-size", "32", "--model", "misha",
                 "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    ckpt = load_checkpoint(out / "vqvae.pt")
    cfg, train_cfg = ckpt["meta"]["config"], ckpt["train_config"]
    assert (cfg["hidden_channels"], cfg["res_channels"], cfg["n_res_blocks"]) == (128, 32, 2)
    assert (cfg["codebook_size"], cfg["embedding_dim"], cfg["beta"]) == (512, 64, 0.25)
    assert not cfg["ema"] and cfg["codebook_init"] == "random" and cfg["beta_term"] == "codebook"
    assert (cfg["input_offset"], cfg["input_scale"]) == (0.5, 2.0) and cfg["recon_divisor"] < 1
    assert train_cfg["amsgrad"] and train_cfg["lr"] == 3e-4 and train_cfg["batch_size"] == 32
    assert train_cfg["schedule"] == "constant" and train_cfg["grad_clip"] == 0
    assert ckpt["optimizer"]["param_groups"][0]["amsgrad"]


def test_recon_loss_option_reaches_the_checkpoint_and_is_refused_for_a_baseline(tiny_source, tmp_path, capsys):
    for loss in ("mse", "l1+grad"):
        out = tmp_path / loss
        assert main(["train-vqvae", "--data", str(tiny_source), "--image-size", "32", "--profile", "smoke",
                     "--steps", "1", "--batch-size", "4", "--recon-loss", loss, "--out", str(out),
                     "--no-progress"]) == 0
        assert load_checkpoint(out / "vqvae.pt")["meta"]["config"]["recon_loss"] == loss
    assert main(["train-vqvae", "--data", str(tiny_source), "--image-size", "32", "--profile", "smoke",
                 "--steps", "1", "--batch-size", "4", "--out", str(tmp_path / "default"), "--no-progress"]) == 0
    profile_loss = load_checkpoint(tmp_path / "default" / "vqvae.pt")["meta"]["config"]["recon_loss"]
    assert profile_loss == get_profile("smoke").vqvae.recon_loss == "l1+grad"
    assert main(["train-vqvae", "--data", str(tiny_source), "--model", "reference", "--recon-loss", "mse",
                 "--steps", "1", "--out", str(tmp_path / "ref")]) == 2
    assert "--recon-loss" in capsys.readouterr().err and not (tmp_path / "ref").exists()
    with pytest.raises(SystemExit):
        main(["train-vqvae", "--recon-loss", "l2", "--out", str(tmp_path / "bad")])


def test_speed_options_reach_the_training_config(tiny_source, tmp_path, capsys):
    out = tmp_path / "fast"
    assert main(["train-vqvae", "--data", str(tiny_source), "--image-size", "32", "--profile", "smoke",
                 "--steps", "2", "--batch-size", "4", "--precision", "bf16", "--channels-last", "--out", str(out),
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["processes"] == 1 and summary["precision"] == "bf16" and summary["channels_last"]
    saved = load_checkpoint(out / "vqvae.pt")["train_config"]
    assert saved["precision"] == "bf16" and saved["channels_last"] and not saved["compile"]
    with pytest.raises(SystemExit):
        main(["train-vqvae", "--precision", "fp16", "--out", str(out)])


def test_bad_input_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path))
    assert main(["train-vqvae", "--data", str(tmp_path / "missing"), "--steps", "1", "--out", str(tmp_path / "o")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope.pt"), "--json"]) == 2
    assert "nope.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train-vqvae", "--minutes", "1", "--steps", "3", "--out", "x"])  # one budget, not both


def test_with_minutes_combines_budgets():
    base = pipeline.get_profile("class").vqvae_train
    assert base.with_budget(10, None).minutes == 10
    assert base.with_budget(None, 50).steps == 50 and base.with_budget(None, 50).minutes is None
    assert base.with_budget(None, None) == base


def textured_slices(root, per_class: int = 25, size: int = 16):
    """Two class folders of textured bright ellipses on black, ``per_class`` slices each (seeded)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            inside = (yy / rng.uniform(0.6, 0.8)) ** 2 + (xx / rng.uniform(0.5, 0.7)) ** 2 < 1
            image = inside * rng.integers(60, 250, (size, size))
            Image.fromarray(image.astype(np.uint8)).save(root / cls / f"{i}.png")
    return root


@pytest.fixture
def sampled(tmp_path, monkeypatch, capsys):
    """A tiny VQ-VAE and conditional prior trained through the CLI (smoke profile, 16 x 16), 6 samples saved
    with --save-dir: (source, samples folder)."""
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path / "home"))
    source, run = textured_slices(tmp_path / "slices"), tmp_path / "run"
    common = ["--data", str(source), "--profile", "smoke", "--steps", "2", "--batch-size", "4", "--out", str(run),
              "--no-progress"]
    assert main(["train-vqvae", "--image-size", "16", *common]) == 0
    assert main(["train-prior", "--vqvae", str(run / "vqvae.pt"), *common]) == 0
    capsys.readouterr()
    assert main(["sample", "--vqvae", str(run / "vqvae.pt"), "--prior", str(run / "prior.pt"), "-n", "6",
                 "--top-k", "8", "--seed", "3", "--out", str(tmp_path / "grid.png"),
                 "--save-dir", str(tmp_path / "samples")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["save_dir"] == str(tmp_path / "samples")
    return source, tmp_path / "samples"


def test_sample_save_dir_writes_one_png_per_sample_and_their_settings(sampled):
    _, folder = sampled
    pngs = sorted(folder.glob("*.png"))
    assert [p.name for p in pngs] == [f"sample_{i:04d}.png" for i in range(6)]
    assert all(Image.open(p).size == (16, 16) and Image.open(p).mode == "L" for p in pngs)
    saved = json.loads((folder / "samples.json").read_text())
    assert saved["image_size"] == 16 and saved["label_names"] == ["a", "b"] and saved["label_kind"] == "class"
    assert [r["label"] for r in saved["samples"]] == [0, 1, 0, 1, 0, 1]          # two labels of equal counts
    assert [r["label_name"] for r in saved["samples"]] == ["a", "b"] * 3
    temperature = pipeline.get_profile("smoke").sampling.temperature                # the profile's default
    assert all(r["seed"] == 3 and r["temperature"] == temperature and r["top_k"] == 8 for r in saved["samples"])


def test_sample_quality_scores_saved_samples_beside_real_slices(sampled, capsys):
    source, folder = sampled
    assert main(["sample-quality", "--samples", str(folder), "--data", str(source), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 6 and report["split"] == "test" and set(report) == {"samples", "real", "n", "split",
                                                                               "source"}
    assert report["samples"]["n"] == 6 and report["real"]["n"] == 2        # half of the 5 held-out slices
    train = load_dataset(str(source), "train", 16).images                  # the CLI scores what the library does
    test = load_dataset(str(source), "test", 16).images
    expected = measure(load_samples(folder).images, test, train, two_sample=False).summary()
    for key in ("nn_ssim_mean", "nn_ssim_share_above_0.6", "memorised_share", "border_tissue_samples",
                "pairwise_ssim", "area_mean"):
        assert report["samples"][key] == pytest.approx(expected[key]), key
    for side in ("samples", "real"):
        assert 0 <= report[side]["two_sample_accuracy"] <= 1 and 0 <= report[side]["depth_agreement"] <= 1
        assert len(report[side]["two_sample_accuracy_runs"]) == CRITIC_REPEATS            # the mean of these
    assert main(["sample-quality", "--samples", str(folder), "--data", str(source)]) == 0
    table = capsys.readouterr().out
    assert "two_sample_accuracy " in table and "two_sample_accuracy_runs" not in table    # the mean only
    assert main(["sample-quality", "--samples", str(folder), "--data", str(source), "--no-two-sample"]) == 0
    table = capsys.readouterr().out
    assert "nn_ssim_mean" in table and "depth_agreement" in table and "two_sample_accuracy" not in table


def test_sample_quality_names_a_folder_without_samples(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path / "home"))
    source = textured_slices(tmp_path / "slices", per_class=5)
    (tmp_path / "empty").mkdir()
    assert main(["sample-quality", "--samples", str(tmp_path / "empty"), "--data", str(source)]) == 2
    assert str(tmp_path / "empty") in capsys.readouterr().err
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name, size in (("sample_0000.png", 16), ("sample_0001.png", 32)):
        Image.fromarray(np.zeros((size, size), np.uint8)).save(mixed / name)
    assert main(["sample-quality", "--samples", str(mixed), "--data", str(source)]) == 2
    error = capsys.readouterr().err
    assert str(mixed) in error and "one size" in error


def test_the_cli_loads_what_a_command_needs_and_no_more():
    """``import vqvae_lib.cli`` (every command's start) leaves out the training pipeline, the data layer,
    torchmetrics, torchvision and matplotlib: ``sample`` pays only for what it uses."""
    import subprocess
    import sys

    heavy = ["vqvae_lib.pipeline", "vqvae_lib.data", "torchmetrics", "torchvision", "matplotlib", "ipywidgets"]
    script = f"import sys, vqvae_lib.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("n", [2, 5, 16])
def test_the_sample_grid_is_the_png_torchvision_writes(tmp_path, n):
    """``cli.save_grid`` writes the grid without importing torchvision (a second of start-up): the same file."""
    from torchvision.utils import save_image

    from vqvae_lib.cli import save_grid

    images = torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(n))
    nrow = max(1, round(n ** 0.5))
    save_grid(images, tmp_path / "ours.png", nrow=nrow)
    save_image(images, tmp_path / "torchvision.png", nrow=nrow, padding=2)
    assert (tmp_path / "ours.png").read_bytes() == (tmp_path / "torchvision.png").read_bytes()
