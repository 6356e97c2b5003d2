"""``python -m autograder``: the CLI decides from the grade records the hooks write, its workers
are killed (and replaced) when a submission overruns ``--timeout``, and ``replay`` is wired."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest

from conftest import autograde_results

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures"
ASSIGNMENT = "hw-fixture"
SLOW = "3601.5"  # seconds of the slow submission's `sleep` (a name pgrep finds)
NOTEBOOK = f"{ASSIGNMENT}.ipynb"


def cli_command(course: Path, *args: str, tmpdir: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """(command, environment) of the CLI with options as flags only: no AUTOGRADER_* variable but the
    fixture's suite path (``tmpdir``: its TMPDIR, the default scratch folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env["AUTOGRADER_SUITE_PATH"] = str(FIXTURE / "suites")
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return [sys.executable, "-m", "autograder", "--course-root", str(course), *args], env


def cli(course: Path, *args: str, timeout: float = 600, tmpdir: Path | None = None) -> subprocess.CompletedProcess:
    command, env = cli_command(course, *args, tmpdir=tmpdir)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def table_rows(printed: str) -> dict[str, str]:
    """{student: line} of the summary table autograde prints for a TA (scripts use --json)."""
    return {line.split()[0]: line for line in printed.splitlines()
            if len(line.split()) > 2 and line.split()[1] in ("graded", "skipped", "failed")}


def submit(course: Path, student: str, nb=None) -> Path:
    """The reference notebook (or ``nb``) as ``student``'s submission; its folder."""
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    if nb is None:
        shutil.copy(course / "solutions" / ASSIGNMENT / NOTEBOOK, folder / NOTEBOOK)
    else:
        nbformat.write(nb, folder / NOTEBOOK)
    return folder


def submit_slow(course: Path, student: str) -> Path:
    """A submission whose graded cell starts a ``sleep SLOW`` process (what pgrep finds) and hangs."""
    nb = nbformat.read(course / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "scaled_add")
    cell.source = f"import subprocess, time\nsubprocess.Popen(['sleep', '{SLOW}'])\ntime.sleep(3600)\n" + cell.source
    return submit(course, student, nb)


def assert_nothing_left(scratch: Path) -> None:
    """No process of a slow submission (its sandboxes, kernel and grading runner, die with its
    killed worker) and nothing in ``scratch`` (the worker's folder, which it could not remove)."""
    for _ in range(20):
        left = subprocess.run(["pgrep", "-f", f"sleep {SLOW}"], capture_output=True, text=True).stdout.strip()
        if not left:
            break
        time.sleep(0.5)
    assert not left, f"processes of the killed submission survived: {left}"
    assert not list(scratch.rglob("*")), sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*"))


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The fixture assignment generated, with ``ann``'s reference submission graded once."""
    course = tmp_path_factory.mktemp("cli") / "course"
    shutil.copytree(FIXTURE / "course" / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    r = cli(course, "generate", ASSIGNMENT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    submit(course, "ann")
    r = cli(course, "autograde", ASSIGNMENT, "--device", "cpu")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert table_rows(r.stdout)["ann"].split()[1:3] == ["graded", "7/7"], r.stdout
    assert "1 graded, 0 skipped, 0 not gradable" in r.stdout, r.stdout
    return course


def record_of(course: Path, student: str) -> Path:
    return course / "autograded" / ".records" / ASSIGNMENT / f"{student}.json"


@pytest.mark.slow
def test_an_unchanged_submission_is_skipped_by_its_records_hash_and_a_changed_one_regraded(course):
    record = json.loads(record_of(course, "ann").read_text())
    assert record["score"] == 7 and record["submission_sha256"]
    assert not list(course.glob("autograded/*/*/.autograder.json"))  # no marker files any more
    r = cli(course, "autograde", ASSIGNMENT, "--device", "cpu", "--json")
    ann = autograde_results(r)["ann"]
    assert r.returncode == 0 and (ann["status"], ann["score"], ann["max_score"]) == ("skipped", 7, 7), ann
    assert json.loads(r.stdout)["counts"] == {"graded": 0, "skipped": 1, "failed": 0}, r.stdout
    assert table_rows(r.stderr)["ann"].split()[1] == "skipped", r.stderr  # the table: stderr
    (course / "submitted" / "ann" / ASSIGNMENT / "notes.txt").write_text("changed after grading")
    r = cli(course, "autograde", ASSIGNMENT, "--device", "cpu", "--json")
    assert r.returncode == 0 and autograde_results(r)["ann"]["status"] == "graded", r.stdout + r.stderr[-2000:]
    assert json.loads(record_of(course, "ann").read_text())["submission_sha256"] != record["submission_sha256"]


@pytest.mark.slow
def test_replay_exit_status_is_wired(course):
    r = cli(course, "replay", ASSIGNMENT, "ann", "--device", "cpu")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no differences" in r.stdout
    r = cli(course, "replay", ASSIGNMENT, "nobody")
    assert r.returncode == 2 and "no grade record" in r.stderr, r.stdout + r.stderr
    edited = json.loads(record_of(course, "ann").read_text())
    gid = next(iter(edited["cells"]))
    edited["cells"][gid]["points"] = 0.0
    edited["score"] -= edited["cells"][gid]["max_points"]
    (course / "autograded" / ".records" / ASSIGNMENT / "eve.json").write_text(json.dumps({**edited, "student": "eve"}))
    r = cli(course, "replay", ASSIGNMENT, "eve", "--device", "cpu")
    assert r.returncode == 1 and "difference" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_the_timeout_kills_only_the_slow_submissions_worker(course, request):
    """One worker: the slow submission (first) is killed at --timeout; the next one is graded by
    a fresh worker; the kernel's sandbox died with the killed worker, and its folders (which
    the killed worker could not remove) are gone."""
    submit_slow(course, "a_slow")
    submit(course, "b_next")
    # a short path of its own (the kernel's socket paths in it must stay under the 107 bytes of
    # a Unix socket's name; tmp_path's are long)
    scratch = Path(tempfile.mkdtemp(prefix="scratch-"))
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    r = cli(course, "autograde", ASSIGNMENT, "--student", "a_slow", "--student", "b_next", "--workers", "1",
            "--device", "cpu", "--timeout", "25", "--cell-timeout", "3000", "--notebook-timeout", "3000", "--json",
            tmpdir=scratch)
    rows = autograde_results(r)
    assert r.returncode == 1, r.stdout + r.stderr[-2000:]
    assert rows["a_slow"]["status"] == "failed" and "exceeded 25 s" in " ".join(rows["a_slow"]["problems"]), rows
    assert (rows["b_next"]["status"], rows["b_next"]["score"]) == ("graded", 7), rows
    assert not record_of(course, "a_slow").exists()
    assert_nothing_left(scratch)


class NoRecordWorker:
    """A worker whose nbgrader run "succeeds" without the hooks: no grade record is written."""

    def grade(self, assignment, student, log, timeout):
        Path(log).write_text("nbgrader ran without autograder.nbgrader_hooks\n")
        return {"ok": True, "error": None, "locked": False}


class FailingWorker:
    """A worker whose nbgrader run raises (after the hooks wrote a record)."""

    def __init__(self, course):
        self.course = course

    def grade(self, assignment, student, log, timeout):
        from autograder import records
        path = record_of(self.course, student)
        record = json.loads(record_of(self.course, "ann").read_text())
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        records.write_record(path, {**record, "student": student, "graded_at": now})
        return {"ok": False, "error": "OperationalError: disk I/O error", "locked": False}


@pytest.mark.slow
def test_a_run_that_wrote_no_record_is_failed_with_the_reason(course, monkeypatch):
    from autograder import cli as cli_module
    from autograder.suites import load_suite

    monkeypatch.setenv("AUTOGRADER_SUITE_PATH", str(FIXTURE / "suites"))
    submit(course, "carl")
    suite = load_suite(ASSIGNMENT)
    loaded = cli_module.Course.load(str(course))
    result = cli_module.grade_one(loaded, suite, ASSIGNMENT, "carl", NoRecordWorker(), cli_module.Settings())
    assert result.status == "failed", result
    assert "no grade record" in result.problems[0] and "nbgrader_hooks" in result.problems[0], result.problems

    submit(course, "dora")
    result = cli_module.grade_one(loaded, suite, ASSIGNMENT, "dora", FailingWorker(course), cli_module.Settings())
    assert result.status == "failed" and "disk I/O error" in result.problems[0], result
    assert not record_of(course, "dora").exists(), "a record whose grade did not reach the gradebook was kept"


def test_a_worker_that_died_between_submissions_leaves_no_folder_when_restarted(tmp_path, monkeypatch):
    """A grading worker killed while idle (the OOM killer, an operator) is restarted by the next
    submission; the dead process's scratch folder goes with it, not only a folder of a worker we
    killed ourselves."""
    from autograder.worker import Worker

    scratch = Path(tempfile.mkdtemp(prefix="scratch-"))
    try:
        worker = Worker({}, env={"AUTOGRADER_SCRATCH": str(scratch)})
        worker.start()
        first = worker.scratch
        assert first.parent == scratch and first.is_dir()
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        worker.start()  # what grade() does for a dead process
        assert not first.exists() and worker.scratch.is_dir(), sorted(p.name for p in scratch.iterdir())
        worker.close()
        assert not list(scratch.iterdir())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.slow
def test_sigterm_mid_grading_stops_cleanly_and_leaves_no_folder(course, request):
    """Slurm's ``scancel`` (SIGTERM, SIGKILL ``KillWait`` seconds later) or a TA's ``kill`` while
    a submission is being graded: autograde grades nothing more, kills its worker and the
    sandboxes, keeps no record for the interrupted submission, removes the worker's folder (the
    submission's source among it), says which submissions were not graded and exits 128+15.
    Only the CLI gets the signal here (a ``kill`` by PID; Slurm's proctrack may signal every
    process, which the worker dying of it covers too)."""
    stop = signal.SIGTERM
    submit_slow(course, "s_slow")
    submit(course, "t_never")
    scratch = Path(tempfile.mkdtemp(prefix="scratch-"))
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    command, env = cli_command(course, "autograde", ASSIGNMENT, "--student", "s_slow", "--student", "t_never",
                               "--workers", "1", "--device", "cpu", "--cell-timeout", "3000", "--notebook-timeout",
                               "3000", "--json", tmpdir=scratch)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not subprocess.run(["pgrep", "-f", f"sleep {SLOW}"], capture_output=True).stdout:
            assert proc.poll() is None and time.monotonic() < deadline, "the slow submission never started"
            time.sleep(0.5)
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + stop, err[-3000:]
    assert f"stopped by {stop.name}: 1 submission(s) not started (t_never)" in err, err[-3000:]
    rows = {row["student"]: row for row in json.loads(out)["results"]}
    assert rows["s_slow"]["status"] == "failed" and "grading was stopped" in " ".join(rows["s_slow"]["problems"]), rows
    assert "t_never" not in rows, rows
    assert not record_of(course, "s_slow").exists() and not record_of(course, "t_never").exists()
    assert_nothing_left(scratch)


@pytest.mark.parametrize("flag", ["--cell-timeout", "--notebook-timeout", "--call-timeout"])
@pytest.mark.parametrize("value", ["0", "-3", "1.5", "soon"])
def test_a_time_limit_that_is_not_whole_seconds_is_refused(tmp_path, flag, value):
    """The timeout flags take the rule of their environment variables (autograder.options.seconds):
    whole seconds, at least 1; anything else stops before grading, exit status 2, saying which flag."""
    r = cli(tmp_path, "autograde", ASSIGNMENT, f"{flag}={value}", timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"argument {flag}: '{value}': expected a number of seconds (a whole number, at least 1)" in r.stderr, r.stderr
