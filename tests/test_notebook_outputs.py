"""The committed notebooks, as a reader opens them: outputs free of progress bars and machine paths, solutions
collapsed, each notebook with learning objectives, a summary and a pointer to its solutions. No execution here:
nbval runs the notebooks; this reads what `make notebooks` committed."""
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
_spec = importlib.util.spec_from_file_location("tidy_notebooks", ROOT / "tools" / "tidy_notebooks.py")
tidy = importlib.util.module_from_spec(_spec)   # the tool that make notebooks runs: one definition of a bar
_spec.loader.exec_module(tidy)
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:home|Users|work|tmp|root|mnt|opt|var)/|[A-Z]:\\\\")


def outputs(notebook: dict):
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            yield output, tidy.output_text(output)


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request) -> dict:
    return json.loads(request.param.read_text())


def test_there_are_five_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


def test_no_progress_bars_in_committed_outputs(notebook):
    bars = [text[:80] for output, text in outputs(notebook) if tidy.is_progress_bar(output)]
    assert not bars, f"progress bars left in the outputs (run make notebooks, which tidies them): {bars}"


def test_every_cell_has_a_unique_id(notebook):
    """nbformat 4.5 cells carry ids (a cell added by hand without one makes nbformat warn, and later fail)."""
    ids = [c.get("id") for c in notebook["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), f"cells without an id or with a repeated one: {ids}"


def test_no_machine_paths_in_committed_outputs(notebook):
    leaks = [m.group(0) + "..." for _, text in outputs(notebook) for m in MACHINE_PATH.finditer(text)]
    assert not leaks and str(ROOT) not in json.dumps(notebook), f"absolute paths in the outputs: {leaks[:5]}"


def test_solutions_are_collapsed_source_and_outputs(notebook):
    solutions = [c for c in notebook["cells"] if tidy.is_solution(c)]
    assert solutions, "every notebook ends with exercises and their solutions"
    for cell in solutions:
        meta = cell["metadata"]
        hidden = meta.get("jupyter", {})
        assert hidden.get("source_hidden") and hidden.get("outputs_hidden"), cell["source"][:1]
        assert meta.get("collapsed") is True and meta.get("hide_input") is True   # the classic notebook's flags


def test_objectives_summary_and_where_the_solutions_are(notebook):
    text = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"]
    assert "**You will learn to**" in text[0]
    assert any(t.startswith("## Summary") for t in text)
    exercises = [t for t in text if t.startswith("## Exercises")]
    assert len(exercises) == 1 and "in the cells below, collapsed" in exercises[0]


def test_tidy_removes_bars_keeps_results_and_hides_solutions():
    bar = {"output_type": "display_data",
           "data": {"text/plain": "vqvae:  10%|#    | 2084/20000 [01:00<10:00, 3.1it/s]"}}
    err = {"output_type": "stream", "name": "stderr", "text": "prior: 100%|##########| 869/869 [00:00<?, ?it/s]\n"}
    result = {"output_type": "stream", "name": "stdout", "text": "1377 steps in 2.6 min; 100% of slices scored\n"}
    figure = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure size 1x1>"}}
    notebook = {"cells": [
        {"cell_type": "code", "source": "fit()", "metadata": {"execution": {"t": 1}}, "outputs": [bar, result, err]},
        {"cell_type": "code", "source": "# Solution 1\n### BEGIN SOLUTION\nx\n### END SOLUTION", "metadata": {},
         "outputs": [figure]},
        {"cell_type": "markdown", "source": "# Solution in prose is not a cell to hide", "metadata": {}}]}
    assert tidy.tidy(notebook, "02_vqvae") == 2
    code, solution, prose = notebook["cells"]
    assert code["outputs"] == [result] and "execution" not in code["metadata"]
    assert solution["outputs"] == [figure] and solution["metadata"]["jupyter"] == {"source_hidden": True,
                                                                                  "outputs_hidden": True}
    assert solution["metadata"]["nbgrader"]["grade_id"] == "02-solution-1"   # nbgrader's "autograded answer"
    assert prose["metadata"] == {}


def test_each_header_states_the_measured_time_and_memory():
    """The "Runs in" line of every notebook is the record of benchmarks/notebook_times.py (record
    notebook-times-class, and notebook-times-pretrained for PRETRAINED = True), to the tenth of a minute and of a GB:
    rerun the benchmark, then update the headers."""
    record = json.loads((ROOT / "benchmarks" / "results" / "notebook-times-class.json").read_text())
    measured = {nb["notebook"]: nb for nb in record["notebooks"]}
    for path in NOTEBOOKS:
        header = "".join(json.loads(path.read_text())["cells"][0]["source"])
        nb = measured[path.name]
        assert f"**Runs in:** {nb['seconds'] / 60:.1f} minutes" in header, path.name
        assert f"peak memory {nb['peak_rss_mb'] / 1024:.1f} GB" in header, path.name
    pretrained = json.loads((ROOT / "benchmarks" / "results" / "notebook-times-pretrained.json").read_text())
    for nb in pretrained["notebooks"]:   # notebooks 02-05 on the course models (PRETRAINED = True)
        if nb["notebook"].startswith("01"):
            continue
        header = "".join(json.loads((ROOT / "notebooks" / nb["notebook"]).read_text())["cells"][0]["source"])
        assert (f"With `PRETRAINED = True` (the course models, loaded): {nb['seconds'] / 60:.1f} minutes, peak memory "
                f"{nb['peak_rss_mb'] / 1024:.1f} GB") in header, nb["notebook"]


def test_each_notebook_tells_its_story_in_at_most_2500_words(notebook):
    """A lesson, not a report: the markdown of a notebook (equations and links counted as they are written)."""
    words = sum(len("".join(c["source"]).split()) for c in notebook["cells"] if c["cell_type"] == "markdown")
    assert words <= 2500, f"{words} words of markdown"
