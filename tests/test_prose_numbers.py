"""Numbers that come from the page. A number with three or more decimals in a notebook's prose is printed by a cell
of that notebook (its committed outputs); one in docs/*.md by a cell of some notebook. Prose describes what a re-run
shows in words and rounded numbers; benchmark numbers live in benchmarks/RESULTS.md. And no history where a student
reads: no dates, commit ids, benchmark record names or mentions of the earlier critic in the notebooks, the docs or
the library's source."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DOCS = sorted((ROOT / "docs").glob("*.md"))
LIBRARY = sorted((ROOT / "vqvae_lib").glob("*.py"))
NUMBER = re.compile(r"(?<![\w.])\d+\.\d{3,}(?![\w.])")
LINKS = re.compile(r"\](\([^)]*\))|https?://\S+|\b\d{4}\.\d{4,5}\b", re.IGNORECASE)
HISTORY = {
    "a date": re.compile(r"\b20\d\d-\d\d-\d\d\b"),
    "a commit id": re.compile(r"(?:commit|git show|at) `?[0-9a-f]{7,40}\b"),
    "a benchmark record name": re.compile(
        r"\b(?:sample-quality|notebook-times|critic-cues|sampler|dead-codes)-[a-z0-9]"),
    "the earlier critic": re.compile(r"\b(?:earlier|weaker|weak) critic", re.IGNORECASE),
}


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def printed(path: Path) -> str:
    """Everything the committed notebook's cells printed (streams and plain-text results)."""
    texts = []
    for cell in cells(path):
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain") or ""
            texts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(texts)


def prose(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown")


def numbers(text: str) -> list[str]:
    return NUMBER.findall(LINKS.sub(" ", text))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebooks_precise_numbers_are_printed_by_the_notebook(path):
    output = printed(path)
    missing = [n for n in numbers(prose(path)) if n not in output]
    assert not missing, f"{path.name}: prose numbers no cell of the notebook prints: {missing}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_the_docs_precise_numbers_are_printed_by_a_notebook(path):
    output = "\n".join(printed(p) for p in NOTEBOOKS)
    missing = [n for n in numbers(path.read_text()) if n not in output]
    assert not missing, f"{path.name}: numbers no notebook prints (say it in words, or point to RESULTS.md): {missing}"


def sources() -> list[tuple[str, str]]:
    texts = [(p.name, "\n".join("".join(c["source"]) for c in cells(p))) for p in NOTEBOOKS]
    texts += [(p.name, p.read_text()) for p in DOCS + LIBRARY]
    return texts


@pytest.mark.parametrize("what", list(HISTORY))
def test_no_history_where_students_read(what):
    found = [f"{name}: {m.group(0)}" for name, text in sources() for m in HISTORY[what].finditer(text)]
    assert not found, f"{what} in the notebooks, docs or library (history belongs in RESULTS.md and git log): {found}"


def test_the_checks_find_what_they_look_for():
    assert numbers("SSIM 0.9741 [paper](https://arxiv.org/abs/1711.00937), arXiv:1711.00937, 0.97, 12.5") == ["0.9741"]
    assert HISTORY["a date"].search("until 2026-12-06") and HISTORY["a commit id"].search("git show ba5ef2b:x.py")
    assert HISTORY["a benchmark record name"].search("record `sample-quality-default-class`")
    assert HISTORY["the earlier critic"].search("scored by the earlier critic")
