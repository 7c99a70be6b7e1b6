"""The exercises of the committed (teacher) notebooks and the student edition made from them: nbgrader's markers
in every solution, one write-it-yourself function per model notebook with its check right after it, solutions
that use only what their notebook introduced, and a student edition with no solution code in it (make test runs
it under nbval; here it is built and read)."""
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
sys.path.insert(0, str(ROOT / "tools"))
_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "tools" / "student_edition.py")
student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student)
tidy = sys.modules["tidy_notebooks"]
WRITE_IT_YOURSELF = {"02": ("quantize", "check_quantize"), "03": ("perplexity", "check_perplexity"),
                     "04": ("causal_mask", "check_causal_mask"), "05": ("distribution", "check_distribution")}
MODULES = ("pipeline", "codebook", "plotting", "plotting_codebook", "plotting_prior", "sampling", "metrics")


def source(cell) -> str:
    return "".join(cell["source"])


def solution_lines(cell) -> list[str]:
    text = source(cell)
    body = text[text.index(tidy.BEGIN) + len(tidy.BEGIN):text.index(tidy.END)]
    return [line.strip() for line in body.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def editions(tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    out = tmp_path_factory.mktemp("student")
    assert student.main([str(p) for p in NOTEBOOKS] + ["--out", str(out)]) == 0
    return {p.name[:2]: (json.loads(p.read_text()), json.loads((out / p.name).read_text())) for p in NOTEBOOKS}


def test_every_solution_is_marked_for_nbgrader_and_collapsed():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        solutions = [c for c in cells if tidy.is_solution(c)]
        assert len(solutions) >= 3, path.name
        ids = [c["metadata"]["nbgrader"]["grade_id"] for c in solutions]
        assert len(set(ids)) == len(ids) and all(i.startswith(path.name[:2] + "-") for i in ids)
        for cell in solutions:
            assert cell["metadata"]["nbgrader"]["solution"] is True and cell["metadata"]["jupyter"]["source_hidden"]
            assert source(cell).count(tidy.BEGIN) == source(cell).count(tidy.END) == 1 and solution_lines(cell)


def test_each_model_notebook_has_its_write_it_yourself_function_and_check_right_after():
    for path in NOTEBOOKS:
        cells, number = json.loads(path.read_text())["cells"], path.name[:2]
        checks = [i for i, c in enumerate(cells) if student.CHECK_CALL.search(source(c))]
        if number not in WRITE_IT_YOURSELF:
            assert not checks
            continue
        name, check = WRITE_IT_YOURSELF[number]
        assert len(checks) == 1 and source(cells[checks[0]]).strip() == f"{check}({name})", path.name
        solution = cells[checks[0] - 1]
        assert tidy.is_solution(solution) and source(solution).startswith(f"def {name}(")
        assert "Write it yourself" in source(cells[checks[0] - 2])
        out = "".join("".join(o.get("text", "")) for o in cells[checks[0]]["outputs"])
        assert out.startswith("✓"), f"{path.name}: the committed solution of {name} should pass its check: {out!r}"


def test_solutions_use_only_what_the_course_introduced_by_then():
    """A library name a solution calls (pipeline.x, plotting_prior.y, ...) appears in a cell the student has read:
    the code or prose of this notebook or an earlier one (an exercise that introduces a call names it in its text)."""
    taught = ""
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        taught += "\n".join(source(c) for c in cells if not tidy.is_solution(c))
        for cell in filter(tidy.is_solution, cells):
            assert "import vqvae_lib" not in source(cell) and "from vqvae_lib" not in source(cell), path.name
            for module, name in re.findall(rf"\b({'|'.join(MODULES)})\.(\w+)\(", "\n".join(solution_lines(cell))):
                assert f"{module}.{name}" in taught, f"{path.name}: a solution uses {module}.{name}, never introduced"


def test_the_student_edition_holds_no_solution_code(editions):
    assert sorted(editions) == ["01", "02", "03", "04", "05"]
    for number, (teacher, edition) in editions.items():
        assert len(teacher["cells"]) == len(edition["cells"])
        teaching = "\n".join(source(c) for c in teacher["cells"] if not tidy.is_solution(c))
        text = json.dumps(edition)
        assert tidy.BEGIN not in text and tidy.END not in text
        for cell in filter(tidy.is_solution, teacher["cells"]):
            for line in solution_lines(cell):
                if len(line) > 24 and not line.startswith("#") and line not in teaching:
                    assert line not in text, f"{number}: solution code in the student edition: {line}"


def test_stubs_raise_your_turn_and_run_all_goes_on(editions):
    for number, (teacher, edition) in editions.items():
        for before, after in zip(teacher["cells"], edition["cells"]):
            if tidy.is_solution(before):
                text = source(after)
                assert student.STUB in text and after["outputs"] == [] and "jupyter" not in after["metadata"]
                top_level = any(line == student.STUB for line in text.splitlines())
                assert top_level == ("raises-exception" in after["metadata"].get("tags", [])), (number, text)
                if source(before).startswith("def "):   # the signature and docstring stay, the body goes
                    assert text.splitlines()[0] == source(before).splitlines()[0] and not top_level
                else:
                    assert re.match(r"# Exercise \d+: your code\n", text)
            elif student.CHECK_CALL.search(source(before)):
                assert after["outputs"] == []
            else:
                assert after == before or after["cell_type"] == "markdown"


def test_the_student_edition_points_to_its_stubs_not_to_hidden_solutions(editions):
    for number, (_, edition) in editions.items():
        prose = [source(c) for c in edition["cells"] if c["cell_type"] == "markdown"]
        assert not any("collapsed" in t for t in prose), number
        exercises = [t for t in prose if t.startswith("## Exercises")]
        assert len(exercises) == 1 and "stub" in exercises[0]


def test_unbalanced_markers_are_refused():
    with pytest.raises(ValueError, match="without"):
        student.strip_solution(f"x = 1\n{tidy.BEGIN}\ny = 2", "nb, cell 3")
    with pytest.raises(ValueError, match="without"):
        student.strip_solution(f"x = 1\n{tidy.END}", "nb, cell 3")
    text, top = student.strip_solution(f"def f():\n    {tidy.BEGIN}\n    return 1\n    {tidy.END}\n", "nb")
    assert text == f"def f():\n    {student.STUB}\n" and not top
