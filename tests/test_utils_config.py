"""Device choice, seeding, paths, profiles, and the two dependency lists."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import torch

from vqvae_lib import config, utils

ROOT = Path(__file__).resolve().parents[1]


def test_device_default_order_and_override(monkeypatch):
    monkeypatch.delenv("VQVAE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "mps" if utils._mps_available() else "cpu"
    assert utils.get_device().type == expected
    assert utils.get_device("cpu").type == "cpu"
    monkeypatch.setenv("VQVAE_DEVICE", "cpu")
    assert utils.get_device().type == "cpu"


def test_device_refuses_what_is_not_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        utils.get_device("cuda")


def test_set_seed_reproduces_every_generator():
    import random

    import numpy as np

    def draw():
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    gen = utils.set_seed(7)
    first, first_gen = draw(), torch.rand(2, generator=gen).tolist()
    gen = utils.set_seed(7)
    assert draw() == first and torch.rand(2, generator=gen).tolist() == first_gen
    utils.set_seed(8)
    assert draw() != first


def test_paths_come_from_the_package_not_the_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VQVAE_HOME", raising=False)
    assert utils.project_root() == ROOT and (utils.project_root() / "pyproject.toml").is_file()
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path))
    assert utils.data_dir() == tmp_path / "data"


def test_display_path_hides_the_machine_layout(monkeypatch, tmp_path):
    monkeypatch.delenv("VQVAE_HOME", raising=False)
    assert utils.display_path(ROOT / "runs" / "class-default" / "vqvae.pt") == "runs/class-default/vqvae.pt"
    assert utils.display_path(Path.home() / "oasis") == "~/oasis"
    assert utils.display_path("data/oasis") == "data/oasis"          # relative paths stay as given
    assert utils.display_path(None) == "-"
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path))
    assert utils.display_path(tmp_path / "data" / "mni152") == "data/mni152"


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    utils.atomic_write_bytes(tmp_path / "a.bin", b"123")
    utils.atomic_torch_save({"x": torch.ones(2)}, tmp_path / "b.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.pt"]
    assert torch.load(tmp_path / "b.pt", weights_only=True)["x"].sum() == 2


def test_profiles(monkeypatch):
    monkeypatch.delenv("VQVAE_PROFILE", raising=False)
    assert config.get_profile().name == "class"
    monkeypatch.setenv("VQVAE_PROFILE", "smoke")
    smoke = config.get_profile()
    assert smoke.name == "smoke" and config.get_profile("full").name == "full"
    assert smoke.image_size < config.get_profile("class").image_size
    for name in config.PROFILES:
        profile = config.get_profile(name)
        assert profile.image_size % profile.vqvae.downsample == 0
    monkeypatch.setenv("VQVAE_PROFILE", "huge")
    with pytest.raises(ValueError, match="VQVAE_PROFILE must be one of"):
        config.get_profile()


def test_config_validation():
    with pytest.raises(ValueError, match="downsample"):
        config.VQVAEConfig(downsample=3)
    with pytest.raises(ValueError, match="codebook_init"):
        config.VQVAEConfig(codebook_init="magic")
    with pytest.raises(ValueError, match="steps"):
        config.TrainConfig(steps=0)
    with pytest.raises(ValueError, match="support"):
        config.SamplingConfig(support="everywhere")
    with pytest.raises(ValueError, match="support_radius"):
        config.SamplingConfig(support="label", support_radius=-1)


def _names(requirements):
    return {re.split(r"[<>=!~\[; ]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_environment_yml_installs_the_project_with_the_makefile_extras():
    """environment.yml keeps no second list of packages: conda gives Python, pip installs the project with the
    extras make install uses; the course's Jupyter and widgets are an extra, not the library's dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1].splitlines()
    listed = [line.split("#")[0].strip()[2:] for line in lines if line.strip().startswith("- ")]
    extras = re.search(r"^EXTRAS \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert listed == ["python=3.11", "pip", "pip:", f"-e .[{extras}]"]
    assert set(extras.split(",")) == set(project["optional-dependencies"]) == {"course", "oasis", "dev", "site"}
    assert not {"jupyterlab", "ipywidgets", "nibabel"} & _names(project["dependencies"])
    assert "torch==2.13.0" not in (ROOT / "pyproject.toml").read_text()


def test_atomic_writes_fsync_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = utils.os.fsync
    monkeypatch.setattr(utils.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    utils.atomic_torch_save({"x": torch.ones(2)}, tmp_path / "c.pt")
    assert len(synced) == 2                                   # the temporary file, then the folder after the rename
    assert torch.load(tmp_path / "c.pt", weights_only=True)["x"].sum() == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_a_plain_install_keeps_data_and_runs_out_of_site_packages(tmp_path):
    """Installed without the repository around it (``pip install .``), the package writes under the per-user
    folder, never beside itself."""
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "vqvae_lib", site / "vqvae_lib", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("VQVAE_HOME", "XDG_DATA_HOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), HOME=str(tmp_path / "home"))
    script = ("import json, vqvae_lib, vqvae_lib.utils as u; print(json.dumps("
              "[vqvae_lib.__file__, str(u.user_home()), str(u.project_root()), str(u.runs_dir()), str(u.data_dir()), "
              "u.run_commit()]))")
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    package, home, root, runs, data, commit = json.loads(out.stdout)
    assert Path(package).parent == site / "vqvae_lib"
    assert Path(home).is_relative_to(tmp_path / "home") and not Path(home).is_relative_to(site)   # per user
    assert (root, runs, data) == (home, str(Path(home) / "runs"), str(Path(home) / "data"))
    assert commit == "unknown"


def test_the_config_defaults_are_the_class_profile():
    """What a bare config says is what the class runs; the class profile states only its budgets and the prior's
    training rate."""
    profile = config.get_profile("class")
    assert config.VQVAEConfig() == profile.vqvae and config.PixelCNNConfig() == profile.prior
    assert config.SamplingConfig() == profile.sampling
    assert config.TrainConfig(minutes=3.0) == profile.vqvae_train
    assert config.TrainConfig(minutes=4.0, lr=8e-3, eval_every=0) == profile.prior_train
    assert config.VQVAEConfig.reference().recon_loss == config.VQVAEConfig.misha().recon_loss == "mse"
