"""``python -m autograder COMMAND``: the TA's entry point around nbgrader.

Every command runs nbgrader with the repo's ``nbgrader_config.py`` (which loads
:mod:`autograder.nbgrader_hooks`: sandboxed kernel, trusted verdicts), so what this
adds is orchestration: per-student worker processes (one GPU each), pre-flight checks
of broken submissions, resumable runs, a summary table and an honest exit status.

Exit status of ``autograde``: 0 every submission graded; 1 some submission could not be
graded (its reason is printed; unreadable notebooks get 0 points in the gradebook);
2 nothing could be done (no GPU with --require-gpu, unknown assignment, ...).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = ".autograder.json"  # written into autograded/STUDENT/ASSIGNMENT/ once a grade is stored


@dataclass
class Course:
    """Where things are: the course root (default: the repo) and the gradebook URL."""

    root: Path
    db_url: str
    course_id: str
    exchange: Path | None = None

    @classmethod
    def load(cls, root: str | None = None, db_url: str | None = None, exchange: str | None = None) -> "Course":
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config.loader import PyFileConfigLoader

        if root:
            os.environ["AUTOGRADER_COURSE_ROOT"] = str(Path(root).resolve())
        if db_url:
            os.environ["AUTOGRADER_DB_URL"] = db_url
        config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
        coursedir = CourseDirectory(config=config)
        return cls(Path(coursedir.root), coursedir.db_url, coursedir.course_id,
                   Path(exchange).resolve() if exchange else None)

    def nbgrader(self, *args: str) -> list[str]:
        argv = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={self.root}",
                f"--CourseDirectory.db_url={self.db_url}"]
        if self.exchange is not None:
            argv.append(f"--Exchange.root={self.exchange}")
        return argv

    def submitted(self, student: str, assignment: str) -> Path:
        return self.root / "submitted" / student / assignment

    def autograded(self, student: str, assignment: str) -> Path:
        return self.root / "autograded" / student / assignment


@dataclass
class Result:
    student: str
    status: str  # graded | skipped | failed
    score: float | None = None
    max_score: float | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def run_nbgrader(course: Course, *args: str) -> int:
    return subprocess.run(course.nbgrader(*args), cwd=ROOT).returncode


def release(course: Course, assignment: str) -> int:
    """Release ``assignment`` to the exchange, generating it first when the release notebooks or
    the gradebook entry are missing (autograding needs the gradebook entry ``generate`` makes)."""
    if not (course.root / "solutions" / assignment).is_dir():
        print(f"release: no source assignment solutions/{assignment} in {course.root}", file=sys.stderr)
        return 2
    if not any((course.root / "assignments" / assignment).glob("*.ipynb")) or not _assignment_known(course, assignment):
        print(f"release: {assignment} has not been generated (release notebooks or gradebook entry missing): "
              "running generate first")
        code = run_nbgrader(course, "generate_assignment", assignment, "--force")
        if code:
            return code
    return run_nbgrader(course, "release_assignment", assignment, "--force")


def release_feedback(course: Course, assignment: str) -> int:
    """Put the generated feedback of ``assignment`` into the exchange (nbgrader release_feedback)."""
    html = sorted(course.root.glob(f"feedback/*/{assignment}/*.html"))
    if not html:
        print(f"release-feedback: no feedback for {assignment} in {course.root / 'feedback'}: run "
              f"`python -m autograder feedback {assignment}` first", file=sys.stderr)
        return 2
    code = run_nbgrader(course, "release_feedback", assignment)
    if code == 0:
        print(f"released feedback of {len(html)} notebook(s); students get it with Fetch Feedback "
              "(Assignments tab) or `nbgrader fetch_feedback`")
    return code


def _submission_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _scores(course: Course, assignment: str, student: str) -> tuple[float, float]:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        sub = gb.find_submission(assignment, student)
        return float(sub.score), float(sub.max_score)


def record_zero(course: Course, assignment: str, student: str) -> None:
    """Store 0 for every graded cell of a submission that cannot be run (idempotent)."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        gb.update_or_create_student(student)
        sub = gb.update_or_create_submission(assignment, student)
        for notebook in sub.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()


def preflight(course: Course, suite, assignment: str, student: str) -> str | None:
    """Why this submission cannot be run at all (missing, renamed, corrupt, foreign), or None."""
    from autograder.notebook import NotebookError, check_submission

    folder = course.submitted(student, assignment)
    if not folder.is_dir():
        return f"no submission folder {folder.relative_to(course.root)}"
    expected = folder / suite.NOTEBOOK
    if not expected.exists():
        others = sorted(p.name for p in folder.glob("*.ipynb"))
        found = f"found {', '.join(others)}" if others else "no notebook at all"
        return f"notebook {suite.NOTEBOOK} missing ({found}); notebooks must keep their name"
    try:
        check_submission(course.root / "solutions" / assignment / suite.NOTEBOOK, expected)
    except NotebookError as err:
        return str(err)
    return None


def _problems(notebook: Path) -> list[str]:
    """Kernel-level problems worth a line in the summary (time-outs, crashes)."""
    import nbformat

    found = []
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:
        return ["autograded notebook unreadable"]
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") in (
                    "CellTimeoutError", "NotebookTimeoutError", "DeadKernelError"):
                found.append(f"{out['ename']}: {out.get('evalue', '')}"[:120])
    return found


def grade_one(course: Course, suite, assignment: str, student: str, gpu: str | None,
              regrade: bool, timeout: float) -> Result:
    start = time.monotonic()
    out_dir = course.autograded(student, assignment)
    marker = out_dir / MARKER
    reason = preflight(course, suite, assignment, student)
    if reason is not None:
        if course.submitted(student, assignment).is_dir():
            record_zero(course, assignment, student)
            return Result(student, "failed", *_scores(course, assignment, student),
                          time.monotonic() - start, [reason])
        return Result(student, "failed", None, None, time.monotonic() - start, [reason])
    digest = _submission_hash(course.submitted(student, assignment))
    if not regrade and marker.exists():
        try:
            if json.loads(marker.read_text()).get("submission") == digest:
                return Result(student, "skipped", *_scores(course, assignment, student), 0.0,
                              ["already graded (same submission); --regrade to redo"])
        except (ValueError, OSError):
            pass
    env = {**os.environ, "AUTOGRADER_COURSE_ROOT": str(course.root), "AUTOGRADER_DB_URL": course.db_url}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    log_dir = course.root / "autograded" / ".logs" / assignment
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{student}.log"
    reason = None
    for attempt in range(3):  # SQLite may be locked by another worker for a moment
        with open(log_path, "w") as log:
            try:
                proc = subprocess.run(course.nbgrader("autograde", assignment, "--student", student, "--force"),
                                      cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = None
        text = log_path.read_text(errors="replace")
        if code == 0 and "ERROR" not in text.split("Autograding", 1)[-1].split("\n[", 1)[0]:
            reason = None
            break
        reason = (f"grading exceeded {timeout:.0f} s" if code is None
                  else _last_error(text) or f"nbgrader exited with status {code}")
        if "database is locked" not in text:
            break
        time.sleep(1 + attempt)
    if reason is not None:
        return Result(student, "failed", None, None, time.monotonic() - start,
                      [f"{reason} (log: {log_path.relative_to(course.root)})"])
    score, max_score = _scores(course, assignment, student)
    marker.write_text(json.dumps({"submission": digest, "score": score, "max_score": max_score}))
    return Result(student, "graded", score, max_score, time.monotonic() - start,
                  _problems(out_dir / suite.NOTEBOOK))


def _last_error(log: str) -> str | None:
    lines = [l.strip() for l in log.splitlines() if l.strip()]
    for line in reversed(lines):
        if ("Error" in line or "Exception" in line) and not line.startswith("[AutogradeApp | ERROR] "):
            return line[:200]
    return None


def visible_gpu_ids(count: int) -> list[str]:
    """The ids a worker may put in CUDA_VISIBLE_DEVICES: the inherited list when one is set
    (a Slurm task bound to GPUs "2,3" must stay on them), else 0 .. count-1."""
    inherited = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return inherited[:count] if inherited else [str(i) for i in range(count)]


def autograde(course: Course, assignment: str, students: list[str] | None, workers: int,
              require_gpu: bool, regrade: bool, timeout: float) -> int:
    import torch
    from tqdm import tqdm

    from autograder.suites import load_suite

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if require_gpu and gpus == 0:
        print("autograde: --require-gpu, but torch sees no CUDA device "
              f"(torch {torch.__version__}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})",
              file=sys.stderr)
        return 2
    try:
        suite = load_suite(assignment)
    except ValueError as err:
        print(f"autograde: {err}", file=sys.stderr)
        return 2
    if not _assignment_known(course, assignment):
        print(f"autograde: assignment {assignment!r} is not in the gradebook {course.db_url}; "
              f"run `python -m autograder generate {assignment}` first", file=sys.stderr)
        return 2
    if students is None:
        base = course.root / "submitted"
        students = sorted(p.parent.name for p in base.glob(f"*/{assignment}") if p.is_dir())
    workers = max(1, workers)
    device_note = f"{gpus} GPU(s), one per worker" if gpus else "CPU"
    print(f"grading {len(students)} submission(s) of {assignment} with {workers} worker(s) on {device_note}")
    started = time.monotonic()
    results: list[Result] = []
    gpu_ids = visible_gpu_ids(gpus)
    with ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(grade_one, course, suite, assignment, s,
                               gpu_ids[i % len(gpu_ids)] if gpu_ids else None, regrade, timeout): s
                   for i, s in enumerate(students)}
        for future in tqdm(as_completed(futures), total=len(futures), unit="sub", file=sys.stderr):
            try:
                results.append(future.result())
            except Exception as err:  # a bug of ours must not stop the batch either
                results.append(Result(futures[future], "failed", problems=[f"{type(err).__name__}: {err}"]))
    results.sort(key=lambda r: r.student)
    print_summary(results, time.monotonic() - started)
    return 1 if any(r.status == "failed" for r in results) else 0


def _assignment_known(course: Course, assignment: str) -> bool:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url, course.course_id) as gb:
        try:
            gb.find_assignment(assignment)
            return True
        except MissingEntry:
            return False


def print_summary(results: list[Result], wall: float) -> None:
    width = max([7] + [len(r.student) for r in results])
    print(f"\n{'student':<{width}}  {'status':<7}  {'score':>11}  {'time':>6}  problems")
    for r in results:
        score = f"{r.score:g}/{r.max_score:g}" if r.score is not None else "-"
        print(f"{r.student:<{width}}  {r.status:<7}  {score:>11}  {r.seconds:5.1f}s  {'; '.join(r.problems)}")
    graded = [r for r in results if r.status == "graded"]
    failed = [r for r in results if r.status == "failed"]
    per = sum(r.seconds for r in graded) / len(graded) if graded else 0.0
    print(f"\n{len(graded)} graded, {len(results) - len(graded) - len(failed)} skipped, {len(failed)} not gradable; "
          f"wall {wall:.1f} s, {per:.1f} s per graded submission (per worker)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--course-root", help="course folder (default: the repo root)")
    parser.add_argument("--db-url", help="gradebook URL, e.g. postgresql+psycopg2://user@host/db "
                        "(default: env AUTOGRADER_DB_URL, else SQLite gradebook.db)")
    parser.add_argument("--exchange", help="nbgrader exchange folder (release/collect)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [("generate", "solutions/ -> assignments/ (and the gradebook)"),
                       ("release", "put the release version into the exchange (runs generate first if needed)"),
                       ("collect", "fetch submissions from the exchange into submitted/"),
                       ("feedback", "HTML feedback per student into feedback/"),
                       ("release-feedback", "put feedback/ into the exchange: students get it with Fetch Feedback")]:
        sub.add_parser(name, help=text).add_argument("assignment")
    grade = sub.add_parser("autograde", help="grade submitted/STUDENT/ASSIGNMENT into the gradebook")
    grade.add_argument("assignment")
    grade.add_argument("--student", action="append", help="only this student (repeatable)")
    grade.add_argument("--workers", type=int, default=1)
    grade.add_argument("--require-gpu", action="store_true", help="fail unless a CUDA device is visible")
    grade.add_argument("--regrade", action="store_true", help="also regrade unchanged, already graded submissions")
    grade.add_argument("--timeout", type=float, default=1800, help="seconds per submission, all included")
    export = sub.add_parser("export", help="grades CSV")
    export.add_argument("--to", default="grades.csv")
    from autograder import selfcheck
    selfcheck.add_arguments(sub.add_parser(
        "selfcheck", help="grade the reference, the blank release and the catalog of faulty implementations "
        "in the production sandbox on this node; exit 1 on any miss"))
    args = parser.parse_args(argv)
    if args.command == "selfcheck":  # needs neither nbgrader nor Jupyter (a bare GPU node runs it)
        return selfcheck.run(args, Path(args.course_root).resolve() if args.course_root else ROOT)

    # nbgrader runs `alembic` (gradebook migrations) from PATH: use the environment's own
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    course = Course.load(args.course_root, args.db_url, args.exchange)
    if args.command == "generate":
        return run_nbgrader(course, "generate_assignment", args.assignment, "--force")
    if args.command == "release":
        return release(course, args.assignment)
    if args.command == "collect":
        return run_nbgrader(course, "collect", args.assignment, "--update")
    if args.command == "feedback":
        return run_nbgrader(course, "generate_feedback", args.assignment, "--force")
    if args.command == "release-feedback":
        return release_feedback(course, args.assignment)
    if args.command == "export":
        return run_nbgrader(course, "export", f"--to={Path(args.to).resolve()}")
    return autograde(course, args.assignment, args.student, args.workers, args.require_gpu,
                     args.regrade, args.timeout)
