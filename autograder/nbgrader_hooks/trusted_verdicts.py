"""The trusted verdicts: every graded cell's output replaced by the hidden suite's verdict (with
the known mistake the failures match), and the submission's grade record made."""
from __future__ import annotations

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from autograder import diagnosis
from autograder.nbgrader_hooks.cells import NOT_GRADED, TESTS_FAILED, _error, _stream, is_graded_test
from autograder.nbgrader_hooks.hidden_suite import _suite_and_code, _timed_grade
from autograder.nbgrader_hooks.settings import grading_device
from autograder.nbgrader_hooks.write_grade_record import _make_record


class TrustedVerdicts(NbGraderPreprocessor):
    """Replace every graded cell's outputs with the trusted grader's verdict and write the
    submission's grade record (see :mod:`autograder.nbgrader_hooks`).

    The verdict is the one :class:`StartTrustedGrading` started (or, without it, computed
    here). It is all a graded test cell shows: :class:`SandboxedExecute` did not run it,
    so there is no "in your notebook this cell raised ..." line any more (the student sees
    their own visible tests' output when they run the notebook themselves).

    The grade record (:func:`autograder.records.make_record`, with the hash of the submitted
    folder, :func:`submission_sha256`) is made here and handed to :class:`WriteGradeRecord`,
    the pipeline's last step, which writes it once nbgrader has saved the grades: a record
    on disk means the gradebook has its grade, so ``python -m autograder autograde`` can
    decide from it (graded, score, "same submission: skip") even after a killed run.
    """

    device = Unicode("", help="cpu / cuda; empty: cuda when torch sees a GPU, else cpu").tag(config=True)
    call_timeout = Integer(None, allow_none=True,
                           help="seconds per hidden call; None: each call's own limit").tag(config=True)

    def preprocess(self, nb, resources):
        suite, code = _suite_and_code(self.config, resources, nb)
        device = grading_device(self.device)
        started = resources.get("autograder", {}).pop("started", None)
        if started is not None and started[:2] == (code, device):
            cells, seconds = started[2].result()
        else:  # not started, or started on other code: grade this code now
            cells, seconds = _timed_grade(suite, code, device, self.call_timeout)
        self.log.info("graded by the hidden suite: %.1f s", seconds)
        resources.setdefault("autograder", {})["cells"] = cells
        # the known mistake the failures match (H23, autograder/diagnosis.py): named in its cells
        mistakes = diagnosis.likely_mistakes(resources["nbgrader"]["assignment"], {
            diagnosis.check_id(gid, r.name) for gid, c in cells.items() for r in c.results if not r.passed}, code)
        for cell in nb.cells:
            if is_graded_test(cell):
                verdict = cells.get(cell.metadata["nbgrader"].get("grade_id"))
                if verdict is None:  # a test cell the suite does not know: no points from it
                    cell.outputs = [_error(NOT_GRADED, "this cell is not part of the graded tests")]
                else:
                    cell.outputs = verdict_outputs(verdict, [m for m in mistakes if any(
                        c.startswith(f"{verdict.grade_id}: ") for c in m.checks)])
        resources["autograder"]["record"] = _make_record(CourseDirectory(config=self.config), resources["nbgrader"],
                                                         suite, code, cells, device, seconds)
        if resources["autograder"].get("refused"):  # entries left out of the submission (autograder.exchange)
            resources["autograder"]["record"][1]["refused"] = resources["autograder"]["refused"]
        return nb, resources


def verdict_outputs(verdict, mistakes=()) -> list:
    """Cell outputs for one CellGrade: readable list + the score nbgrader reads.

    Full or partial credit is an ``execute_result`` holding the points; zero is an error
    output (nbgrader gives 0 for an error). Only check names and hints appear, and the
    one-line description of each known mistake (``mistakes``: :class:`autograder.diagnosis.CatalogMatch`)
    the failures match.
    """
    lines = [f"Graded by the course's grader, outside your notebook: "
             f"{verdict.points:g} / {verdict.max_points:g} points"]
    for result in verdict.results:
        mark = "PASS" if result.passed else "FAIL"
        lines.append(f"  [{mark}] {result.name}" + ("" if result.passed else f": {result.hint}"))
    if not verdict.results:
        lines.append("  (no checks)")
    for mistake in mistakes:
        lines.append(f"  Likely mistake (these failures match a known one): {mistake.description}")
    text = "\n".join(lines) + "\n"
    if verdict.points <= 0 and verdict.max_points > 0:
        return [_error(TESTS_FAILED, f"0 / {verdict.max_points:g} points", traceback=lines)]
    return [_stream(text, "stdout"),
            nbformat.v4.new_output("execute_result", data={"text/plain": f"{verdict.points:g}"},
                                   execution_count=None)]
