"""Grading at cluster scale on a real Slurm (one node: munged, slurmctld, slurmd started here)
with a real PostgreSQL gradebook, faults included.

The documented workflow of ``autograder/slurm/README.md``: ``sbatch --array`` with
``grade_array.sbatch`` (one student per task, both assignments), then ``export.sbatch``
with ``--dependency=afterany``. Faults: one array task is cancelled mid-grading and
resubmitted; a task under ``REQUIRE_GPU=1`` on this GPU-less node fails fast. Every grade is
compared with the class generator's expectation and with a local ``python -m autograder
autograde --workers 2`` of the same submissions (SQLite gradebook).
"""
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
from autograder.suites import load_suite  # noqa: E402
from classgen import UNGRADABLE, make_class  # noqa: E402
from servers import postgres_server, slurm_cluster  # noqa: E402

SLURM_DIR = ROOT / "autograder" / "slurm"
ASSIGNMENTS = ["hw-attention", "hw-conv"]
# the class of each assignment: one of each kind the issue names (classgen's names)
KINDS = {"correct": "correct", "partial": "partial_", "blank": "blank", "broken notebook": "corrupt_json",
         "infinite loop": "infinite_loop", "hostile": "hostile_monkeypatch"}
KILLED = ("hw-attention", "correct")  # its array task is cancelled mid-grading, then resubmitted
NO_GPU = ("hw-conv", "blank")  # graded once more under REQUIRE_GPU=1: must fail fast
GPU_MESSAGE = "--require-gpu, but torch sees no CUDA device"  # autograder/cli.py, quoted in the Slurm README
GRADING_ENV = {"AUTOGRADER_CELL_TIMEOUT": "20", "AUTOGRADER_NOTEBOOK_TIMEOUT": "120", "AUTOGRADER_DEVICE": "cpu"}
TASK = ["--cpus-per-task=1", "--mem=4G"]  # two concurrent tasks on this 2-core node


def cli(course: Path, *args: str, db_url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **GRADING_ENV}
    env.pop("AUTOGRADER_DB_URL", None)
    db = ["--db-url", db_url] if db_url else []
    return subprocess.run([sys.executable, "-m", "autograder", "--course-root", str(course), *db, *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)


def make_course(course: Path, db_url: str | None) -> None:
    """solutions/ copied and both assignments generated (into the gradebook at ``db_url``, else SQLite)."""
    for assignment in ASSIGNMENTS:
        shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
        r = cli(course, "generate", assignment, db_url=db_url)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def make_submissions(course: Path, drafts: Path) -> dict[str, dict[str, float]]:
    """The class of each assignment (one student per kind) under drafts/ASSIGNMENT/STUDENT.

    Returns {assignment: {student: expected score}}: classgen's expectation from the suites.
    """
    expected = {}
    for assignment in ASSIGNMENTS:
        suite = load_suite(assignment)
        everyone = make_class(course / "solutions" / assignment / suite.NOTEBOOK,
                              course / "assignments" / assignment / suite.NOTEBOOK, suite, drafts / assignment)
        chosen = [next(s for s in everyone if s.startswith(prefix)) for prefix in KINDS.values()]
        expected[assignment] = {s: everyone[s] for s in chosen}
    return expected


def submit(course: Path, drafts: Path, expected: dict[str, dict[str, float]]) -> None:
    """Copy the chosen drafts to course/submitted/STUDENT/ASSIGNMENT (what `collect` makes)."""
    for assignment, students in expected.items():
        for student in students:
            shutil.copytree(drafts / assignment / student, course / "submitted" / student / assignment)


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


def report_throughput(tasks: dict[tuple[str, str], dict[str, str]]) -> None:
    """Print students per minute of the arrays (first start to last end; README's numbers)."""
    when = lambda text: datetime.fromisoformat(text).timestamp()  # noqa: E731
    start = min(when(r["StartTime"]) for r in tasks.values())
    span = max(when(r["EndTime"]) for r in tasks.values()) - start
    print(f"\nslurm: {len(tasks)} submissions (both classes, incl. the resubmitted task) in {span:.0f} s with "
          f"2 concurrent 1-CPU tasks: {60 * len(tasks) / span:.1f} students/min; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for (assignment, student), r in sorted(tasks.items()):
        print(f"  {assignment:13s} {student:24s} {seconds(r):4d} s")


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
def test_grading_on_slurm(tmp_path):
    with postgres_server() as db_url, slurm_cluster() as slurm:
        course = tmp_path / "course"
        drafts = tmp_path / "drafts"
        make_course(course, db_url)
        expected = make_submissions(course, drafts)
        submit(course, drafts, expected)
        logs = course / "autograded" / ".logs"
        logs.mkdir(parents=True)
        env = {**GRADING_ENV, "AUTOGRADER_DB_URL": db_url, "AUTOGRADER_COURSE_ROOT": str(course),
               "EXPORT_TO": str(tmp_path / "grades.csv")}
        students_file, arrays = {}, {}
        for assignment in ASSIGNMENTS:  # the killed student first: its task starts at once
            order = sorted(expected[assignment], key=lambda s: (assignment, s) != KILLED)
            students_file[assignment] = tmp_path / f"students-{assignment}.txt"
            students_file[assignment].write_text("\n".join(order) + "\n")

        def grade(assignment, *extra, **more_env):
            return sbatch(slurm, *TASK, *extra, f"--output={logs}/slurm-%A_%a.out", "--export=ALL",
                          str(SLURM_DIR / "grade_array.sbatch"), str(students_file[assignment]),
                          env={**env, "ASSIGNMENT": assignment, **more_env})

        def line(assignment, student):
            return students_file[assignment].read_text().split().index(student) + 1

        no_gpu = grade(NO_GPU[0], f"--array={line(*NO_GPU)}", REQUIRE_GPU="1")
        for assignment in ASSIGNMENTS:
            arrays[assignment] = grade(assignment, f"--array=1-{len(expected[assignment])}")
        killed = f"{arrays[KILLED[0]]}_{line(*KILLED)}"
        wait_running(slurm, killed, logs / KILLED[0] / f"{KILLED[1]}.log")
        time.sleep(3)  # mid-grading: the sandboxed notebook is running
        marker = course / "autograded" / ".records" / KILLED[0] / f"{KILLED[1]}.json"  # written once graded
        assert not marker.exists(), "the task finished before it could be cancelled mid-grading"
        slurm.run("scancel", killed)
        slurm.wait([killed], 60)
        assert slurm.jobs(killed)[0]["JobState"] == "CANCELLED", slurm.jobs(killed)
        assert not marker.exists(), "the cancelled task recorded a finished grading"
        assert not graders_of(course, KILLED[1], wait=30), "the cancelled task's grading processes survived"
        resubmitted = grade(KILLED[0], f"--array={line(*KILLED)}")
        export = sbatch(slurm, f"--dependency=afterany:{':'.join([*arrays.values(), resubmitted])}",
                        f"--output={logs}/slurm-export-%j.out", "--export=ALL", str(SLURM_DIR / "export.sbatch"),
                        env=env)
        slurm.wait([no_gpu, *arrays.values(), resubmitted, export], 1800)
        out = lambda job: (logs / f"slurm-{job}.out").read_text(errors="replace")  # noqa: E731

        # the GPU task failed fast with the documented message, and graded nothing
        record = slurm.jobs(no_gpu)[0]
        assert (record["JobState"], record["ExitCode"]) == ("FAILED", "2:0"), record
        text = out(f"{no_gpu}_{line(*NO_GPU)}")
        assert GPU_MESSAGE in text and not re.search(r"grading \d+ submission", text), text[-2000:]
        assert seconds(record) < 120, record
        print(f"\nREQUIRE_GPU=1 task failed after {seconds(record)} s")

        # every other task ran to its end: 0, or 1 for an ungradable notebook (reason in its log)
        per_task = {}
        for assignment, job in arrays.items():
            for index, rec in task_states(slurm, job).items():
                student = students_file[assignment].read_text().split()[int(index) - 1]
                if (assignment, student) == KILLED:
                    assert rec["JobState"] == "CANCELLED", rec
                    rec = slurm.jobs(resubmitted)[0]
                    index = f"{resubmitted}_{index}"
                else:
                    index = f"{job}_{index}"
                want = ("FAILED", "1:0") if student in UNGRADABLE else ("COMPLETED", "0:0")
                assert (rec["JobState"], rec["ExitCode"]) == want, (student, rec, out(index)[-3000:])
                assert student in out(index), out(index)[-2000:]
                per_task[assignment, student] = rec
        record = slurm.jobs(export)[0]
        assert (record["JobState"], record["ExitCode"]) == ("COMPLETED", "0:0"), (record, out(f"export-{export}"))

        # the shared gradebook: one submission row per student, every graded cell scored, the expected grade
        got = {}
        for assignment in ASSIGNMENTS:
            rows = gradebook_rows(db_url, assignment)
            assert sorted(rows) == sorted(expected[assignment]), rows
            for student, subs in rows.items():
                assert len(subs) == 1, f"{assignment}/{student}: {len(subs)} submission rows"
                score, scored, max_score = subs[0]
                assert scored, f"{assignment}/{student}: a graded cell has no score"
                got[assignment, student] = score
        want = {(a, s): e for a in ASSIGNMENTS for s, e in expected[a].items()}
        wrong = {k: (got[k], want[k]) for k in want if abs(got[k] - want[k]) > 1e-6}
        assert not wrong, f"(Slurm grade, expected): {wrong}"

        # the export job's CSV holds exactly those grades
        # (nbgrader exports every student of the gradebook for every assignment: 0 where none was submitted)
        exported = {(r["assignment"], r["student_id"]): float(r["score"])
                    for r in csv.DictReader((tmp_path / "grades.csv").open())}
        everyone = {s for a in ASSIGNMENTS for s in expected[a]}
        assert set(exported) == {(a, s) for a in ASSIGNMENTS for s in everyone}, exported
        assert {k: exported[k] for k in got} == pytest.approx(got), exported
        assert all(score == 0 for k, score in exported.items() if k not in got), exported

        # submissions untouched (nothing a student made is lost)
        for assignment in ASSIGNMENTS:
            for student in expected[assignment]:
                for path in (drafts / assignment / student).rglob("*"):
                    if path.is_file():
                        copy = course / "submitted" / student / assignment / path.relative_to(
                            drafts / assignment / student)
                        assert copy.read_bytes() == path.read_bytes(), copy

        report_throughput(per_task)

    # the same submissions graded locally (SQLite gradebook, 2 workers) give the same grades
    local = tmp_path / "local"
    make_course(local, None)
    submit(local, drafts, expected)
    for assignment in ASSIGNMENTS:
        r = cli(local, "autograde", assignment, "--workers", "2")
        assert r.returncode == 1, r.stdout + r.stderr[-3000:]  # the broken notebook makes it non-zero
        rows = gradebook_rows(f"sqlite:///{local}/gradebook.db", assignment)
        mismatch = {s: (got[assignment, s], rows[s][0][0]) for s in expected[assignment]
                    if abs(got[assignment, s] - rows[s][0][0]) > 1e-6}
        assert not mismatch, f"{assignment} (Slurm, local): {mismatch}\n{r.stdout}"
