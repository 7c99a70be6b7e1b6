"""The torchrun commands of docs/scaling.md are real, the README is a welcome page (at most 200 lines, its numbers
in the generated table), and the tables of README.md and RESULTS.md are the records'."""
import re
import shlex
from pathlib import Path

import pytest
from torch.distributed.run import get_args_parser

from vqvae_lib.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
SCALING = README.parent / "docs" / "scaling.md"


def torchrun_commands() -> list[list[str]]:
    lines = [line.strip() for line in SCALING.read_text().splitlines()]
    return [shlex.split(line) for line in lines if re.match(r"^(\w+=\S+ )*torchrun ", line)]


def test_readme_torchrun_commands_parse():
    commands = torchrun_commands()
    assert len(commands) >= 3, "docs/scaling.md documents torchrun for one node, several nodes and the CPU"
    for words in commands:
        words = words[words.index("torchrun") + 1:]
        launcher = get_args_parser().parse_args(words)  # torchrun's own flags
        assert launcher.module and launcher.training_script == "vqvae_lib", words
        ours = build_parser().parse_args(launcher.training_script_args)
        assert ours.command in ("train-vqvae", "train-prior") and ours.out


def _report():
    """benchmarks/report.py as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("report", README.parent / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    return report


def test_the_readme_is_a_welcome_page_with_the_commands_a_class_needs():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    commands = text.split("```bash", 1)[1].split("```", 1)[0]
    assert all(f"make {target}" in commands for target in ("tutorial", "lab", "student", "test"))
    for doc in ("docs/cli.md", "docs/scaling.md", "docs/data.md", "docs/teaching.md", "docs/glossary.md"):
        assert doc in text and (README.parent / doc).is_file(), doc
    outside = re.sub(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", "", text, flags=re.DOTALL)
    assert not re.findall(r"\b\d+\.\d{2,}\b", re.sub(r"\b\d{4}\.\d{4,5}\b", "", outside)), \
        "measured numbers in the README belong in its generated blocks"


@pytest.mark.parametrize("document", [README, README.parent / "benchmarks" / "RESULTS.md"], ids=lambda p: p.name)
def test_readme_numbers_agree_with_the_records(document):
    """README's and RESULTS.md's generated tables (between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``) are
    what ``benchmarks/report.py`` writes from ``benchmarks/results/*.json`` now: rerun it after a new record."""
    text = document.read_text()
    assert re.search(r"<!-- [\w-]+:start -->", text)
    assert text == _report().document_text(document), f"{document.name} is stale: run python benchmarks/report.py"


def test_report_refuses_a_record_without_a_schema(tmp_path):
    """A record in benchmarks/results/ must say which layout it has: report.py names the file it cannot read."""
    report = _report()
    (tmp_path / "sample-quality-old.json").write_text('{"name": "sample-quality-old"}')
    report.ROOT = tmp_path
    with pytest.raises(SystemExit, match="sample-quality-old.json"):
        report.load_records(tmp_path)
