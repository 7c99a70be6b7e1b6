"""The student edition of the notebooks: every solution replaced by its stub, as nbgrader's generate_assignment does.

    python tools/student_edition.py notebooks/*.ipynb --out build/student     # what make student runs

The committed notebooks are the teacher edition: their solution cells hold the code between ``### BEGIN SOLUTION``
and ``### END SOLUTION`` (with nbgrader's metadata, so nbgrader can take them as they are). Here each such region
becomes ``raise NotImplementedError("your turn")`` at its indentation, and
- "# Solution N" becomes "# Exercise N: your code"; the solution cells lose their outputs and are shown, not
  collapsed: a student writes into them;
- a stub at the top level of a cell (an end-of-notebook exercise) raises when run, so the cell gets the tag
  ``raises-exception``: Run All, nbconvert and nbval go on past it; a stub inside a function (a write-it-yourself
  exercise) raises only when called, and the check after it (``vqvae_lib.exercises``) says "not yet";
- the cells that run a check lose their outputs (the teacher edition's say "✓");
- the sentences that point to collapsed solutions say where to write instead.
Every other cell keeps its executed outputs, so a student can read ahead.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tidy_notebooks import BEGIN, END, HIDDEN, is_solution, source  # noqa: E402

STUB = 'raise NotImplementedError("your turn")'
SOLUTION_HEADING = re.compile(r"^# Solution (\d+)")
CHECK_CALL = re.compile(r"^\s*check_\w+\(", re.MULTILINE)
TEACHER_TO_STUDENT = {   # the teacher edition's sentence -> the student edition's
    "The solutions are in the cells below, collapsed: click the \"…\" (JupyterLab) or the cell's left bar to open "
    "one, after you have tried.":
        "Write your answers in the cells below: each starts as a stub that raises "
        "`NotImplementedError(\"your turn\")`; replace the stub with your code.",
    "The solution is in the collapsed cell below: open it after you have tried.":
        "Write it in the cell below: replace the stub `raise NotImplementedError(\"your turn\")` with your code.",
}


def strip_solution(text: str, where: str) -> tuple[str, bool]:
    """Replace each BEGIN/END SOLUTION region of ``text`` by the stub at the BEGIN line's indentation.
    Returns the new text and whether a stub sits at the top level (the cell raises when it runs)."""
    lines, out, top_level, inside = text.split("\n"), [], False, False
    for line in lines:
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}: {BEGIN} inside a solution")
            inside = True
            indent = line[:len(line) - len(line.lstrip())]
            out.append(indent + STUB)
            top_level |= indent == ""
        elif marker == END:
            if not inside:
                raise ValueError(f"{where}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out), top_level


def student_cell(cell: dict, where: str) -> dict:
    cell = copy.deepcopy(cell)
    if cell["cell_type"] == "markdown":
        text = source(cell)
        for teacher, student in TEACHER_TO_STUDENT.items():
            text = text.replace(teacher, student)
        cell["source"] = text
        return cell
    if cell["cell_type"] != "code":
        return cell
    solution = is_solution(cell)
    if solution:
        heading = SOLUTION_HEADING.sub(r"# Exercise \1: your code", source(cell), count=1)
        text, top_level = strip_solution(heading, where)
        cell["source"] = text
        for key in HIDDEN:
            cell["metadata"].pop(key, None)
        if top_level:
            tags = cell["metadata"].setdefault("tags", [])
            if "raises-exception" not in tags:
                tags.append("raises-exception")
    elif END in source(cell):
        raise ValueError(f"{where}: {END} without {BEGIN}")
    if solution or CHECK_CALL.search(source(cell)):
        cell["outputs"], cell["execution_count"] = [], None
    return cell


def student_edition(notebook: dict, name: str = "notebook") -> dict:
    """The student edition of one notebook (a new dict; ``notebook`` is not changed)."""
    edition = copy.deepcopy(notebook)
    edition["cells"] = [student_cell(cell, f"{name}, cell {i}") for i, cell in enumerate(notebook["cells"])]
    return edition


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("build/student"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.notebooks:
        notebook = json.loads(path.read_text())
        edition = student_edition(notebook, path.name)
        stubs = sum(is_solution(c) for c in notebook["cells"])
        (args.out / path.name).write_text(json.dumps(edition, indent=1, ensure_ascii=False) + "\n")
        print(f"{args.out / path.name}: {stubs} solutions replaced by stubs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
