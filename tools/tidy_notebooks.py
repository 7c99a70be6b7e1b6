"""Tidy executed notebooks before they are committed: drop progress-bar outputs and execution timestamps.

    python tools/tidy_notebooks.py notebooks/*.ipynb      # make notebooks runs this after executing them

A progress bar ("vqvae:  10%|#  | 2084/20000") is live feedback for a student running the cell; frozen in a
committed notebook it reads as if training stopped at 10 %. The notebooks say in words how training ended
(``FitResult.describe``), so the bars go. Solution cells get the metadata that collapses their source and
outputs in JupyterLab and in the classic notebook, and nbgrader's metadata of a solution cell ("autograded answer"),
so that a teacher who hands out notebooks with nbgrader can take them as they are.
"""
from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+|it/s\]|s/it\]")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN = {"jupyter": {"source_hidden": True, "outputs_hidden": True}, "collapsed": True, "hide_input": True}


def output_text(output: dict) -> str:
    text = output.get("text") or output.get("data", {}).get("text/plain") or ""
    return "".join(text) if isinstance(text, list) else text


def is_progress_bar(output: dict) -> bool:
    """A tqdm bar: its widget's plain-text fallback or its stderr stream."""
    return output.get("output_type") in ("display_data", "stream") and bool(BAR.search(output_text(output)))


def source(cell: dict) -> str:
    return "".join(cell["source"])


def is_solution(cell: dict) -> bool:
    """A code cell with nbgrader's solution markers."""
    return cell["cell_type"] == "code" and BEGIN in source(cell)


def solution_id(cell: dict, stem: str) -> str:
    """A stable nbgrader grade_id: the notebook's number and the solution's name ("02-quantize", "02-solution-4")."""
    first = source(cell).lstrip().split("\n", 1)[0]
    name = re.match(r"def (\w+)", first) or re.match(r"#\s*(Solution \d+)", first)
    if not name:
        raise ValueError(f"{stem}: a solution cell starts with '# Solution N' or 'def name(': {first!r}")
    return f"{stem.split('_')[0]}-{name.group(1).lower().replace(' ', '-')}"


def nbgrader(grade_id: str) -> dict:
    return {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3, "solution": True, "task": False}


def tidy(notebook: dict, stem: str = "notebook") -> int:
    """Remove progress bars and timestamps in place; hide solution cells and give them nbgrader's metadata.
    Returns the outputs removed."""
    removed = 0
    for cell in notebook["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        if cell["cell_type"] != "code":
            continue
        kept = [o for o in cell.get("outputs", []) if not is_progress_bar(o)]
        removed += len(cell.get("outputs", [])) - len(kept)
        cell["outputs"] = kept
        if is_solution(cell):
            cell["metadata"].update(copy.deepcopy(HIDDEN))
            cell["metadata"]["nbgrader"] = nbgrader(solution_id(cell, stem))
    return removed


def main(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        notebook = json.loads(path.read_text())
        removed = tidy(notebook, path.stem)
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        print(f"{path}: {removed} progress-bar outputs removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
