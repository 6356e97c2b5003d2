"""Grading at cluster scale on a real Slurm (one node: munged, slurmctld, slurmd started here)
with a real PostgreSQL gradebook, faults included.

The documented workflow of ``autograder/slurm/README.md``: ``sbatch --array`` with
``grade_array.sbatch`` (one student per task), then ``export.sbatch`` with
``--dependency=afterany``. Faults: one array task is cancelled mid-grading and resubmitted; a
task under ``REQUIRE_GPU=1`` on this GPU-less node fails fast; a notebook that is not JSON
fails its task with the reason in its log. Every grade is compared with the class generator's
expectation (read from the suite, never from running anything).

None of this depends on the assignment, so it runs on the small fixture assignment
(tests/fixtures: two functions, 7 points, hidden checks of a second or so); that the real
assignments' classes -- infinite loops and hostile students included -- get exactly these
expected grades from the same ``autograde`` command is tests/e2e/test_class_e2e.py's proof.
It is also the gradebook-on-PostgreSQL test: ``generate`` and every grade go to the server,
nothing to SQLite.
"""
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
from autograder.suites import load_suite  # noqa: E402
from classgen import UNGRADABLE, make_class  # noqa: E402
from servers import postgres_server, slurm_cluster  # noqa: E402

SLURM_DIR = ROOT / "autograder" / "slurm"
FIXTURE = ROOT / "tests" / "fixtures"
ASSIGNMENT = "hw-fixture"
# the class: one of each kind whose grading ends differently (classgen's names)
KINDS = {"correct": "correct", "partial": "partial_", "blank": "blank", "broken notebook": "corrupt_json"}
KILLED = "correct"  # its array task is cancelled mid-grading, then resubmitted
SLOW = 15  # s: a student cell of the killed student sleeps this long, so it is cancelled mid-grading
NO_GPU = "blank"  # graded once more under REQUIRE_GPU=1: must fail fast
GPU_MESSAGE = "--require-gpu, but torch sees no CUDA device"  # autograder/cli.py, quoted in the Slurm README
GRADING_ENV = {"AUTOGRADER_CELL_TIMEOUT": "30", "AUTOGRADER_NOTEBOOK_TIMEOUT": "120", "AUTOGRADER_DEVICE": "cpu",
               "AUTOGRADER_SUITE_PATH": str(FIXTURE / "suites")}
TASK = ["--cpus-per-task=1", "--mem=4G"]  # two concurrent tasks on this 2-core node


def cli(course: Path, *args: str, db_url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **GRADING_ENV}
    env.pop("AUTOGRADER_DB_URL", None)
    db = ["--db-url", db_url] if db_url else []
    return subprocess.run([sys.executable, "-m", "autograder", "--course-root", str(course), *db, *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)


def make_course(course: Path, db_url: str) -> None:
    """The fixture's solutions/ copied and its assignment generated into the gradebook at ``db_url``."""
    shutil.copytree(FIXTURE / "course" / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    r = cli(course, "generate", ASSIGNMENT, db_url=db_url)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def make_submissions(course: Path, drafts: Path) -> dict[str, float]:
    """The class (one student per kind) under drafts/STUDENT; {student: expected score}
    (classgen's expectation from the suite). The killed student also sleeps ``SLOW`` s in a
    cell of its own (a student may add cells; it changes no grade)."""
    suite = load_suite(ASSIGNMENT)
    everyone = make_class(course / "solutions" / ASSIGNMENT / suite.NOTEBOOK,
                          course / "assignments" / ASSIGNMENT / suite.NOTEBOOK, suite, drafts)
    chosen = {s: everyone[s] for s in (next(s for s in everyone if s.startswith(p)) for p in KINDS.values())}
    path = drafts / KILLED / suite.NOTEBOOK
    nb = nbformat.read(path, 4)
    nb.cells.append(nbformat.v4.new_code_cell(f"import time\ntime.sleep({SLOW})"))
    nbformat.write(nb, path)
    return chosen


def submit(course: Path, drafts: Path, expected: dict[str, float]) -> None:
    """Copy the chosen drafts to course/submitted/STUDENT/ASSIGNMENT (what `collect` makes)."""
    for student in expected:
        shutil.copytree(drafts / student, course / "submitted" / student / ASSIGNMENT)


def sbatch(slurm, *args: str, env: dict) -> str:
    """Submit from the repository root (as the README says); the job id."""
    out = subprocess.run(["sbatch", "--parsable", *args], cwd=ROOT, env={**slurm.env, **env},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"sbatch {args}: {out.stderr}"
    return out.stdout.strip().split(";")[0]


def wait_running(slurm, job: str, log: Path, timeout: float = 300) -> None:
    """Until array task ``job`` runs and its student's nbgrader log shows grading has begun."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = slurm.jobs(job)[0]["JobState"]
        assert state in ("PENDING", "RUNNING"), f"{job} is {state} before it could be cancelled"
        if state == "RUNNING" and log.exists() and log.stat().st_size > 0:
            return
        time.sleep(1)
    raise TimeoutError(f"{job} did not start grading within {timeout} s")


def graders_of(course: Path, student: str, wait: float) -> list[str]:
    """Command lines of grading processes (CLI or nbgrader) still running for ``student`` of ``course``
    after up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:  # the CLI gets the course from its environment, nbgrader on its command line
                argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
                environ = (proc / "environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "--student" in argv and student in argv and str(course) in " ".join(argv) + environ:
                found.append(" ".join(argv))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(1)


def task_states(slurm, job: str) -> dict[str, dict[str, str]]:
    """{array task index: scontrol record} of an array job."""
    return {j["ArrayTaskId"]: j for j in slurm.jobs(job)}


def seconds(record: dict[str, str]) -> int:
    h, m, s = (record["RunTime"].split("-")[-1]).split(":")
    return int(h) * 3600 + int(m) * 60 + int(s)


def report_throughput(tasks: dict[str, dict[str, str]]) -> None:
    """Print the tasks' times (first start to last end, and each task's)."""
    when = lambda text: datetime.fromisoformat(text).timestamp()  # noqa: E731
    start = min(when(r["StartTime"]) for r in tasks.values())
    span = max(when(r["EndTime"]) for r in tasks.values()) - start
    print(f"\nslurm: {len(tasks)} submissions (incl. the resubmitted task) in {span:.0f} s with 2 concurrent "
          f"1-CPU tasks; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for student, r in sorted(tasks.items()):
        print(f"  {student:24s} {seconds(r):4d} s")


def gradebook_rows(db_url: str, assignment: str) -> dict[str, list]:
    """{student: [(score, every graded cell scored?, max_score)]}: one entry per submission row."""
    from nbgrader.api import Gradebook, SubmittedAssignment

    rows: dict[str, list] = {}
    with Gradebook(db_url, "10423-lec4") as gb:
        subs = gb.db.query(SubmittedAssignment).filter(SubmittedAssignment.assignment.has(name=assignment)).all()
        for sub in subs:
            grades = [g for nb in sub.notebooks for g in nb.grades]
            scored = bool(grades) and all(g.score is not None and not g.needs_manual_grade for g in grades)
            rows.setdefault(sub.student.id, []).append((float(sub.score), scored, float(sub.max_score)))
    return rows


@pytest.mark.slow
def test_grading_on_slurm(tmp_path, monkeypatch, request):
    monkeypatch.setenv("AUTOGRADER_SUITE_PATH", GRADING_ENV["AUTOGRADER_SUITE_PATH"])  # (load_suite here too)
    suite = load_suite(ASSIGNMENT)
    total = sum(points for _, points in suite.GRADE_CELLS.values())
    with postgres_server() as db_url, slurm_cluster() as slurm:
        course = tmp_path / "course"
        drafts = tmp_path / "drafts"
        make_course(course, db_url)
        expected = make_submissions(course, drafts)
        assert expected[KILLED] == total and expected[NO_GPU] == 0, expected
        submit(course, drafts, expected)
        logs = course / "autograded" / ".logs"
        logs.mkdir(parents=True)
        # the node's scratch for every task (short: the kernels' socket paths live in it)
        scratch = Path(tempfile.mkdtemp(prefix="scratch-"))
        request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
        env = {**GRADING_ENV, "AUTOGRADER_DB_URL": db_url, "AUTOGRADER_COURSE_ROOT": str(course),
               "EXPORT_TO": str(tmp_path / "grades.csv"), "AUTOGRADER_SCRATCH": str(scratch)}
        students_file = tmp_path / "students.txt"  # the killed student first: its task starts at once
        students_file.write_text("\n".join(sorted(expected, key=lambda s: s != KILLED)) + "\n")

        def grade(*extra, **more_env):
            return sbatch(slurm, *TASK, *extra, f"--output={logs}/slurm-%A_%a.out", "--export=ALL",
                          str(SLURM_DIR / "grade_array.sbatch"), str(students_file),
                          env={**env, "ASSIGNMENT": ASSIGNMENT, **more_env})

        def line(student):
            return students_file.read_text().split().index(student) + 1

        array = grade(f"--array=1-{len(expected)}")
        no_gpu = grade(f"--array={line(NO_GPU)}", REQUIRE_GPU="1")
        killed = f"{array}_{line(KILLED)}"
        wait_running(slurm, killed, logs / ASSIGNMENT / f"{KILLED}.log")
        time.sleep(3)  # mid-grading: the sandboxed notebook is running (its student cell sleeps SLOW s)
        marker = course / "autograded" / ".records" / ASSIGNMENT / f"{KILLED}.json"  # written once graded
        assert not marker.exists(), "the task finished before it could be cancelled mid-grading"
        slurm.run("scancel", killed)
        slurm.wait([killed], 60)
        assert slurm.jobs(killed)[0]["JobState"] == "CANCELLED", slurm.jobs(killed)
        assert not marker.exists(), "the cancelled task recorded a finished grading"
        assert not graders_of(course, KILLED, wait=30), "the cancelled task's grading processes survived"
        resubmitted = grade(f"--array={line(KILLED)}")
        export = sbatch(slurm, f"--dependency=afterany:{array}:{resubmitted}",
                        f"--output={logs}/slurm-export-%j.out", "--export=ALL", str(SLURM_DIR / "export.sbatch"),
                        env=env)
        slurm.wait([no_gpu, array, resubmitted, export], 900)
        out = lambda job: (logs / f"slurm-{job}.out").read_text(errors="replace")  # noqa: E731

        # the GPU task failed fast with the documented message, and graded nothing
        record = slurm.jobs(no_gpu)[0]
        assert (record["JobState"], record["ExitCode"]) == ("FAILED", "2:0"), record
        text = out(f"{no_gpu}_{line(NO_GPU)}")
        assert GPU_MESSAGE in text and not re.search(r"grading \d+ submission", text), text[-2000:]
        assert seconds(record) < 120, record
        print(f"\nREQUIRE_GPU=1 task failed after {seconds(record)} s")

        # every other task ran to its end: 0, or 1 for an ungradable notebook (reason in its log)
        per_task = {}
        for index, rec in task_states(slurm, array).items():
            student = students_file.read_text().split()[int(index) - 1]
            if student == KILLED:
                assert rec["JobState"] == "CANCELLED", rec
                rec = slurm.jobs(resubmitted)[0]
                index = f"{resubmitted}_{index}"
            else:
                index = f"{array}_{index}"
            want = ("FAILED", "1:0") if student in UNGRADABLE else ("COMPLETED", "0:0")
            assert (rec["JobState"], rec["ExitCode"]) == want, (student, rec, out(index)[-3000:])
            assert student in out(index), out(index)[-2000:]
            if student in UNGRADABLE:
                assert "not valid notebook JSON" in out(index), out(index)[-2000:]
            per_task[student] = rec
        assert set(per_task) == set(expected), per_task
        record = slurm.jobs(export)[0]
        assert (record["JobState"], record["ExitCode"]) == ("COMPLETED", "0:0"), (record, out(f"export-{export}"))

        # the shared gradebook: one submission row per student, every graded cell scored, the expected grade
        rows = gradebook_rows(db_url, ASSIGNMENT)
        assert sorted(rows) == sorted(expected), rows
        got = {}
        for student, subs in rows.items():
            assert len(subs) == 1, f"{student}: {len(subs)} submission rows"
            score, scored, max_score = subs[0]
            assert scored, f"{student}: a graded cell has no score"
            assert max_score == total, (student, max_score, total)
            got[student] = score
        wrong = {s: (got[s], expected[s]) for s in expected if abs(got[s] - expected[s]) > 1e-6}
        assert not wrong, f"(Slurm grade, expected): {wrong}"
        assert not (course / "gradebook.db").exists()  # nothing went to SQLite

        # the export job's CSV holds exactly those grades
        exported = {r["student_id"]: float(r["score"]) for r in csv.DictReader((tmp_path / "grades.csv").open())
                    if r["assignment"] == ASSIGNMENT}
        assert exported == pytest.approx(got), exported

        # submissions untouched (nothing a student made is lost)
        for student in expected:
            for path in (drafts / student).rglob("*"):
                if path.is_file():
                    copy = course / "submitted" / student / ASSIGNMENT / path.relative_to(drafts / student)
                    assert copy.read_bytes() == path.read_bytes(), copy

        # every task's worker removed its folder, the cancelled one's too (autograde stops on SIGTERM)
        assert not list(scratch.iterdir()), sorted(p.name for p in scratch.iterdir())

        report_throughput(per_task)
