"""The CLI trains, resumes and evaluates end to end on tiny data; bad input gets a clear message."""
import json

import pytest
import torch
from conftest import tiny_imagefolder

from vqvae_lib import pipeline
from vqvae_lib.cli import main
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
    assert main(args) == 0  # resumes from step 4
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 7
    assert load_checkpoint(out / "vqvae.pt")["history"]["step"] == list(range(1, 8))

    assert main(["evaluate", "--checkpoint", str(out / "vqvae.pt"), "--data", str(tiny_source), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"ssim_mean", "psnr_mean", "mse", "perplexity", "active_codes", "n_images"}
    assert scores["n_images"] == 4  # the seeded 20 % hold-out of 20 slices
    assert -1.0 <= scores["ssim_mean"] <= 1.0 and scores["active_codes"] >= 1

    assert main(["evaluate", "--checkpoint", str(out / "vqvae.pt"), "--data", str(tiny_source),
                 "--split", "all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 20


def test_minutes_budget_and_reference_model(tiny_source, tmp_path, capsys):
    out = tmp_path / "ref"
    assert main(["train-vqvae", "--data", str(tiny_source), "--image-size", "32", "--model", "reference",
                 "--minutes", "0.002", "--batch-size", "4", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["stopped"] == "minutes"
    model = pipeline.load_vqvae(out / "vqvae.pt", torch.device("cpu"))
    assert model.config.hidden_channels == 128 and model.config.codebook_init == "random"


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
    assert pipeline.with_minutes(base, 10, None).minutes == 10
    assert pipeline.with_minutes(base, None, 50).steps == 50 and pipeline.with_minutes(base, None, 50).minutes is None
    assert pipeline.with_minutes(base, None, None) == base
