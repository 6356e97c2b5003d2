"""The course's nbgrader configuration: every option it sets is one nbgrader (or our hooks) really
has, and output is cut as configured -- by nbgrader's LimitOutput (lines, tracebacks) and, in a
real sandboxed kernel, by SandboxedExecute's byte cap."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

ROOT = Path(__file__).resolve().parents[1]
from autograder import nbgrader_hooks  # noqa: E402


def course_config():
    """The configuration nbgrader loads from the repo's nbgrader_config.py (hooks included)."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()


def _configurable_classes() -> dict[str, type]:
    import nbconvert.exporters
    import nbconvert.preprocessors
    import nbgrader.apps
    import nbgrader.converters
    import nbgrader.coursedir
    import nbgrader.exchange
    import nbgrader.preprocessors

    classes = {}
    for module in (nbgrader.preprocessors, nbgrader.apps, nbgrader.converters, nbgrader.coursedir, nbgrader.exchange,
                   nbconvert.preprocessors, nbconvert.exporters, nbgrader_hooks):
        for name in dir(module):
            obj = getattr(module, name)
            if isinstance(obj, type) and hasattr(obj, "class_traits"):
                classes.setdefault(name, obj)
    return classes


def test_every_configured_option_exists():
    """nbgrader only warns ("not recognized") about an unknown option and ignores it: check here."""
    classes = _configurable_classes()
    unknown = []
    for section, options in course_config().items():
        assert section in classes, f"c.{section} configures no known class"
        traits = classes[section].class_traits(config=True)
        unknown += [f"c.{section}.{option}" for option in options if option not in traits]
    assert not unknown, f"not nbgrader options: {unknown}"


def test_default_timeouts_come_from_one_place_and_the_docs_say_them():
    """CELL_TIMEOUT_S / NOTEBOOK_TIMEOUT_S are the defaults of SandboxedExecute and of the environment
    variables; the READMEs' numbers are checked against them (the Slurm README's makespan uses it)."""
    cell, notebook = nbgrader_hooks.CELL_TIMEOUT_S, nbgrader_hooks.NOTEBOOK_TIMEOUT_S
    execute = nbgrader_hooks.SandboxedExecute
    assert (execute.timeout.default_value, execute.notebook_timeout.default_value) == (cell, notebook)
    config = course_config()
    nbgrader_hooks.configure_from_environment(config, {})
    assert (config.SandboxedExecute.timeout, config.SandboxedExecute.notebook_timeout) == (cell, notebook)
    assert nbgrader_hooks.StartTrustedGrading.call_timeout.default_value is None  # each call's own
    config = course_config()
    nbgrader_hooks.configure_from_environment(config, {"AUTOGRADER_CALL_TIMEOUT": "9"})
    assert (config.StartTrustedGrading.call_timeout, config.TrustedVerdicts.call_timeout) == (9, 9)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"`--cell-timeout` ({cell} s), `--notebook-timeout` ({notebook} s)" in readme
    slurm = " ".join((ROOT / "autograder" / "slurm" / "README.md").read_text().split())
    assert f"(`AUTOGRADER_NOTEBOOK_TIMEOUT`, {notebook} s by default" in slurm


def test_limit_output_cuts_long_streams_and_tracebacks():
    from nbgrader.preprocessors import LimitOutput

    config = course_config()
    limit = LimitOutput(config=config)
    cell = nbformat.v4.new_code_cell("print(...)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n" * 100_000),
                    nbformat.v4.new_output("error", ename="E", evalue="e", traceback=[f"line {i}" for i in range(5000)])]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb, _ = limit.preprocess(nb, {})
    stream, error = nb.cells[0].outputs
    assert len(stream.text.split("\n")) == config.LimitOutput.max_lines == 500
    assert stream.text.endswith("... Output truncated ...")
    assert len(error.traceback) == config.LimitOutput.max_traceback == 100
    assert "... Traceback truncated ..." in error.traceback


def test_sandboxed_kernel_drops_output_beyond_the_byte_cap(tmp_path):
    """One gigantic line (no newline for LimitOutput to count) in a real sandboxed kernel."""
    config = course_config()
    execute = nbgrader_hooks.SandboxedExecute(config=config)
    execute.max_output_bytes = 100_000
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import sys\nfor _ in range(50):\n    sys.stdout.write('y' * 100_000)\n    sys.stdout.flush()"),
        nbformat.v4.new_code_cell("print('after')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb, _ = execute.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    texts = [out.get("text", "") for cell in nb.cells for out in cell.outputs]
    marker = "\n[output beyond 100000 bytes dropped]\n"
    assert marker in texts, [t[:80] for t in texts]
    assert sum(len(t) for t in texts) <= 100_000 + len(marker)  # of the 5 MB written
    assert "after" not in "".join(texts)  # dropped as well: the cap is per notebook


def test_graded_test_cells_are_not_run_in_the_kernel(tmp_path):
    """Their output would be replaced by the trusted verdict: they get a note instead of a run
    (hw-conv's trains a CNN), and a graded test cell cannot change the kernel's state."""
    config = course_config()
    execute = nbgrader_hooks.SandboxedExecute(config=config)
    test_cell = nbformat.v4.new_code_cell("x = 'changed by the test cell'\nraise RuntimeError('ran')")
    test_cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": "t", "points": 1}
    answer = nbformat.v4.new_code_cell("x = 'answer'")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": "a"}
    nb = nbformat.v4.new_notebook(cells=[answer, test_cell, nbformat.v4.new_code_cell("print(x)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb, _ = execute.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    assert [o.get("text") for o in nb.cells[1].outputs] == [nbgrader_hooks.GRADED_OUTSIDE]
    assert nb.cells[2].outputs[0]["text"] == "answer\n"


def test_trusted_verdicts_shows_the_verdict_only():
    """No "in your notebook this cell raised" line: the kernel did not run the cell."""
    from autograder.checks import CellGrade, CheckResult

    verdict = CellGrade("t", "f", 1.0, 2.0, [CheckResult("t", "small", True, None),
                                             CheckResult("t", "big", False, "wrong shape")])
    text = nbgrader_hooks.verdict_outputs(verdict)[0]["text"]
    assert "1 / 2 points" in text and "[FAIL] big: wrong shape" in text and "in your notebook" not in text


def test_a_scratch_folder_too_long_for_the_kernels_sockets_is_named(tmp_path, monkeypatch):
    """The notebook kernel talks through Unix sockets in the scratch folder, whose paths may not
    exceed 107 bytes: a longer folder gets an error naming it and the fix, not ZeroMQ's
    "File name too long" (seen with a pytest tmp_path as TMPDIR), and leaves nothing behind."""

    from autograder.nbgrader_hooks import SandboxedExecute

    deep = tmp_path / ("s" * max(1, 100 - len(str(tmp_path))))
    deep.mkdir()
    monkeypatch.setenv("AUTOGRADER_SCRATCH", str(deep))
    with pytest.raises(RuntimeError) as err:
        SandboxedExecute().preprocess(nbformat.v4.new_notebook(), {})
    message = str(err.value)
    assert "too long" in message and "AUTOGRADER_SCRATCH" in message and str(deep) in message, message
    assert not list(deep.iterdir())
