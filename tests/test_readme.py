"""The README's torchrun commands are real: torchrun's own parser and ours accept every one of them."""
import re
import shlex
from pathlib import Path

from torch.distributed.run import get_args_parser

from vqvae_lib.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def torchrun_commands() -> list[list[str]]:
    lines = [line.strip() for line in README.read_text().splitlines()]
    return [shlex.split(line) for line in lines if re.match(r"^(\w+=\S+ )*torchrun ", line)]


def test_readme_torchrun_commands_parse():
    commands = torchrun_commands()
    assert len(commands) >= 3, "the README documents torchrun for one node, several nodes and the CPU"
    for words in commands:
        words = words[words.index("torchrun") + 1:]
        launcher = get_args_parser().parse_args(words)  # torchrun's own flags
        assert launcher.module and launcher.training_script == "vqvae_lib", words
        ours = build_parser().parse_args(launcher.training_script_args)
        assert ours.command in ("train-vqvae", "train-prior") and ours.out


def test_readme_numbers_agree_with_the_records():
    """The README's generated tables (headline numbers, notebook times, sample quality) are what
    ``benchmarks/report.py`` writes from ``benchmarks/results/*.json`` now: rerun it after a new record."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("report", README.parent / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    assert README.read_text() == report.readme_text(), "README.md is stale: run python benchmarks/report.py"
