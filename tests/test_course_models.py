"""The course models in pretrained/default/: they fit the size limit, load with this code (never training), score on
this machine's built-in data what their record says, and a course model that no longer fits is refused by name."""
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vqvae_lib import course, pipeline
from vqvae_lib.checkpoint import config_from, load_checkpoint
from vqvae_lib.config import PixelCNNConfig, Profile, VQVAEConfig, get_profile
from vqvae_lib.prior import evaluate_prior

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "pretrained" / "default"
RECORD = ROOT / "benchmarks" / "results" / "sample-quality-default-course-t0.7-depth.json"
FILES = course.VQVAE_FILES + course.PRIOR_FILES
SSIM_TOLERANCE = 0.002   # the test split scored again: only float rounding may differ
BITS_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def course_pair():
    profile = get_profile("pretrained")
    vqvae, vqvae_run = pipeline.load_or_train_vqvae(profile)
    prior, prior_run = pipeline.load_or_train_prior(profile)
    return profile, vqvae, vqvae_run, prior, prior_run


def test_the_course_models_ship_within_20_mb():
    sizes = {name: (COURSE / name).stat().st_size for name in FILES}
    assert sum(sizes.values()) <= 20 * 2**20, sizes


def test_the_pretrained_profile_is_how_the_course_models_were_trained():
    """``train-vqvae`` / ``train-prior --profile pretrained`` make them again, step for step."""
    profile = get_profile("pretrained")
    vq = load_checkpoint(COURSE / "vqvae.pt", map_location="cpu")
    pr = load_checkpoint(COURSE / "prior.pt", map_location="cpu")
    assert vq["train_config"] == profile.vqvae_train.to_dict() and vq["step"] == profile.vqvae_train.steps
    assert pr["train_config"] == profile.prior_train.to_dict() and pr["step"] == profile.prior_train.steps
    assert config_from(VQVAEConfig, vq["meta"]["config"], "vqvae.pt") == profile.vqvae
    data_fields = ("codebook_size", "n_labels", "height", "width")   # filled in from the code maps at training
    stored = config_from(PixelCNNConfig, pr["meta"]["config"], "prior.pt").to_dict()
    assert {k: v for k, v in stored.items() if k not in data_fields} == \
        {k: v for k, v in profile.prior.to_dict().items() if k not in data_fields}


def test_the_course_models_load_without_training_and_score_as_recorded(course_pair):
    profile, vqvae, vqvae_run, prior, prior_run = course_pair
    record = json.loads(RECORD.read_text())
    assert vqvae_run.loaded and prior_run.loaded
    assert (vqvae_run.step, prior_run.step) == (record["vqvae"]["steps"], record["prior"]["steps"])
    scores = pipeline.evaluate_vqvae(vqvae, "default").summary()
    assert scores["ssim_mean"] == pytest.approx(record["vqvae"]["test"]["ssim_mean"], abs=SSIM_TOLERANCE)
    test_maps = pipeline.profile_code_maps(profile, split="test")
    bits = evaluate_prior(prior, test_maps.indices, test_maps.labels)["bits_per_code"]
    assert bits == pytest.approx(record["prior"]["test_bits_per_code"], abs=BITS_TOLERANCE)
    # the repository's files stay as committed; the run folder holds copies of them
    for name in FILES:
        assert (vqvae_run.checkpoint.parent / name).read_bytes() == (COURSE / name).read_bytes()


def copy_course(tmp_path: Path) -> Path:
    folder = tmp_path / "course"
    folder.mkdir()
    for name in FILES:
        shutil.copy2(COURSE / name, folder / name)
    return folder


def course_with(tmp_path: Path, change) -> Profile:
    """The profile ``pretrained`` over a copy of the course models whose VQ-VAE checkpoint ``change`` edited."""
    folder = copy_course(tmp_path)
    ckpt = torch.load(folder / "vqvae.pt", weights_only=True)
    change(ckpt)
    torch.save(ckpt, folder / "vqvae.pt")
    return replace(get_profile("pretrained"), course_models=str(folder))


def test_a_course_vqvae_of_other_code_is_refused_by_name(tmp_path):
    # weights that no longer fit the stored architecture
    profile = course_with(tmp_path, lambda ckpt: ckpt["meta"]["config"].update(hidden_channels=48))
    with pytest.raises(course.CourseModelError, match=r"course VQ-VAE .*course/vqvae\.pt does not load"):
        pipeline.load_or_train_vqvae(profile, out_dir=tmp_path / "run")


def test_a_course_vqvae_of_other_built_in_bytes_warns_by_name(tmp_path):
    profile = course_with(tmp_path, lambda ckpt: ckpt.update(fingerprint="another-template"))
    with pytest.warns(UserWarning, match=r"course/vqvae\.pt was trained on built-in slices .*another-template"):
        pipeline.load_or_train_vqvae(profile, out_dir=tmp_path / "run")


def test_an_unfinished_course_model_is_refused_by_name(tmp_path):
    profile = course_with(tmp_path, lambda ckpt: ckpt.update(step=ckpt["planned_steps"] - 1))
    with pytest.raises(course.CourseModelError, match=r"course/vqvae\.pt stopped at step"):
        pipeline.load_or_train_vqvae(profile, out_dir=tmp_path / "run")


def test_a_course_prior_of_another_vqvae_is_refused_by_name(tmp_path):
    def another_file(ckpt):   # another file: another fingerprint
        ckpt["history"]["loss"][0] += 1.0

    profile = course_with(tmp_path, another_file)
    with pytest.raises(course.CourseModelError, match=r"course prior .*prior\.pt was trained on the codes of another"):
        pipeline.load_or_train_prior(profile, out_dir=tmp_path / "run")


def test_the_course_comparison_says_when_it_cannot_run(tmp_path):
    assert course.comparison_skipped(get_profile("class"), "default") is None
    assert "PRETRAINED = True" in course.comparison_skipped(get_profile("pretrained"), "default")
    assert "SOURCE = 'default'" in course.comparison_skipped(get_profile("class"), str(tmp_path))


def test_course_models_are_for_the_built_in_data_only(tmp_path):
    with pytest.raises(course.CourseModelError, match="SOURCE = 'default'"):
        pipeline.load_or_train_vqvae(get_profile("pretrained"), str(tmp_path), out_dir=tmp_path / "run")
