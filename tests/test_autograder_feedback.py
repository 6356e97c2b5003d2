"""Feedback, as a student gets it: the TA's ``feedback`` and ``release-feedback`` commands on a
graded submission, the student's Fetch Feedback (``nbgrader fetch_feedback``), and the fetched
HTML rendering its math in headless Chromium with every network request refused."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures"
from test_browser import CHROMIUM, FLAGS  # noqa: E402  (one browser, one set of flags for every test)
ASSIGNMENT, STUDENT, COURSE_ID = "hw-fixture", "alice", "10423-lec4"
MATH_CELL = r"My derivation: $\sum_{i=1}^{n} x_i^2$ and $$\frac{\partial L}{\partial w} = \alpha \sqrt{d}$$"


def _run(argv, env, cwd=ROOT) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{argv}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def fetched_feedback(tmp_path_factory) -> Path:
    """A graded fixture submission whose feedback went TA -> exchange -> student; the student's HTML."""
    tmp = tmp_path_factory.mktemp("feedback")
    course, exchange, student_home = tmp / "course", tmp / "exchange", tmp / "student"
    shutil.copytree(FIXTURE / "course" / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    exchange.mkdir(mode=0o777)
    os.chmod(exchange, 0o777)
    env = {**os.environ, "AUTOGRADER_SUITE_PATH": str(FIXTURE / "suites"), "AUTOGRADER_DEVICE": "cpu",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AUTOGRADER_DB_URL", None)
    cli = [sys.executable, "-m", "autograder", "--course-root", str(course), "--exchange", str(exchange)]
    _run(cli + ["release", ASSIGNMENT], env)  # generates first: nothing was generated yet

    # the student's submission: the instructor's answers plus a markdown cell with math, submitted
    # through the exchange as `nbgrader submit` does
    nb = nbformat.read(course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(MATH_CELL))
    student_home.mkdir()
    (student_home / ASSIGNMENT).mkdir()
    nbformat.write(nb, student_home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    def nbgrader_student(command):  # what the Assignments tab runs for the student
        return [sys.executable, "-m", "nbgrader", command, ASSIGNMENT, f"--student={STUDENT}",
                f"--Exchange.root={exchange}", f"--CourseDirectory.course_id={COURSE_ID}"]
    _run(nbgrader_student("submit"), env, cwd=student_home)

    _run(cli + ["collect", ASSIGNMENT], env)
    _run(cli + ["autograde", ASSIGNMENT, "--student", STUDENT], env)
    _run(cli + ["feedback", ASSIGNMENT], env)
    released = _run(cli + ["release-feedback", ASSIGNMENT], env)
    assert "Fetch Feedback" in released.stdout
    _run(nbgrader_student("fetch_feedback"), env, cwd=student_home)
    html = sorted((student_home / ASSIGNMENT / "feedback").rglob(f"{ASSIGNMENT}.html"))
    assert len(html) == 1, sorted(p.relative_to(student_home) for p in student_home.rglob("*"))
    return html[0]


def test_the_student_fetches_feedback_with_the_verdicts(fetched_feedback):
    text = fetched_feedback.read_text()
    assert "Graded by the course&#39;s grader" in text or "Graded by the course's grader" in text
    assert "[PASS]" in text and "[FAIL]" not in text and "My derivation" in text


def test_feedback_loads_nothing_from_the_network(fetched_feedback):
    text = fetched_feedback.read_text()
    remote = re.findall(r"""<(?:script|link|img)[^>]+(?:src|href)=["']?(?:https?:)?//[^"'> ]+""", text)
    assert not remote, remote[:5]
    assert text.count("<script") == 2 and 'src="' not in "".join(re.findall(r"<script[^>]*>", text))


def test_feedback_math_is_typeset_offline_in_chromium(fetched_feedback):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium not found: install Debian's chromium (`make test` does)")
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS, headless=True)
        context.route(re.compile(r"^(?!file:).*"), lambda route: (requested.append(route.request.url), route.abort()))
        page = context.new_page()
        page.goto(fetched_feedback.as_uri(), wait_until="load")
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
        page.evaluate("() => MathJax.startup.promise")
        containers = page.locator("mjx-container")
        assert containers.count() >= 2
        assert page.locator("mjx-container[display='true'] svg").count() >= 1   # the $$...$$ display formula
        assert page.locator("mjx-container svg").count() == containers.count()
        assert "\\sum" not in page.inner_text("body")  # no TeX source left untypeset
        context.close()
    assert not requested, requested
