"""Committed figures come from the class profile (or a benchmark); smoke runs never touch figures/."""
import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from PIL import Image

from vqvae_lib import plotting
from vqvae_lib.utils import project_root

ROOT = project_root()
SHOWN_IN = [ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md"]


def _tiny_figure() -> Figure:
    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [1, 0])
    return fig


def test_smoke_figures_go_to_build_and_carry_their_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path))
    monkeypatch.setenv("VQVAE_PROFILE", "smoke")
    path = Path(plotting.save_figure(_tiny_figure(), "99_check"))
    assert path == tmp_path / "build" / "figures" / "99_check.png"
    assert not (tmp_path / "figures" / "99_check.png").exists()
    assert Image.open(path).text["vqvae_lib.profile"] == "smoke"


@pytest.mark.parametrize("profile, folder", [("class", "figures"), ("full", "figures/full"),
                                             ("benchmark", "figures")])
def test_each_profile_has_its_folder(tmp_path, monkeypatch, profile, folder):
    monkeypatch.setenv("VQVAE_HOME", str(tmp_path))
    monkeypatch.setenv("VQVAE_PROFILE", "smoke")  # an explicit profile wins over the environment
    path = Path(plotting.save_figure(_tiny_figure(), "99_check", profile))
    assert path == tmp_path / folder / "99_check.png"
    text = Image.open(path).text
    assert text["vqvae_lib.profile"] == profile and text["vqvae_lib.commit"]


def _shown_figures() -> list[Path]:
    names = set()
    for doc in SHOWN_IN:
        names |= set(re.findall(r"figures/([\w.-]+\.png)", doc.read_text()))
    return sorted(ROOT / "figures" / name for name in names)


def test_documents_show_figures():
    assert len(_shown_figures()) >= 3


@pytest.mark.parametrize("path", _shown_figures(), ids=lambda p: p.name)
def test_figures_the_documents_show_were_made_by_the_class_profile_or_a_benchmark(path):
    assert path.is_file(), f"{path} is shown in the README or RESULTS.md but does not exist"
    profile = Image.open(path).text.get("vqvae_lib.profile")
    assert profile in plotting.FIGURE_PROFILES, (
        f"{path.name} was made by profile {profile!r}; only {plotting.FIGURE_PROFILES} may write the figures "
        "the documents show (re-run the notebook with VQVAE_PROFILE=class, or benchmarks/report.py)")
