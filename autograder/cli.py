"""``python -m autograder COMMAND``: the TA's entry point around nbgrader.

Every command runs nbgrader with the repo's ``nbgrader_config.py`` (which loads
:mod:`autograder.nbgrader_hooks`: sandboxed kernel, trusted verdicts), so what this
adds is orchestration: long-lived grading workers (:mod:`autograder.worker`, one GPU each,
killed and replaced when a submission overruns ``--timeout``), pre-flight checks of broken
submissions, resumable runs, a summary table and an honest exit status.

Configuration is by flags, which reach nbgrader and the workers as traitlets options (command
line or the workers' config) and win. A flag not given leaves in force what
``nbgrader_config.py`` sets from the documented ``AUTOGRADER_*`` variables -- read in one
place, :mod:`autograder.options`, for a TA's plain ``nbgrader``, the Slurm scripts and the
workers -- else the defaults written there. Whether a submission was graded, its score, and
whether it is unchanged since (skip) come from its grade record (:mod:`autograder.records`),
which the hooks write.

Exit status of ``autograde``: 0 every submission graded; 1 some submission could not be
graded (its reason is printed; unreadable notebooks get 0 points in the gradebook);
2 nothing could be done (no GPU with --require-gpu, unknown assignment, ...).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder import options, records

ROOT = Path(__file__).resolve().parents[1]
LOCKED_RETRIES = 3  # attempts when SQLite's gradebook is locked by another worker for a moment


@dataclass
class Course:
    """Where things are: the course root (default: the repo) and the gradebook URL."""

    root: Path
    db_url: str
    course_id: str
    exchange: Path | None = None

    @classmethod
    def load(cls, root: str | None = None, db_url: str | None = None, exchange: str | None = None) -> "Course":
        """The course of ``nbgrader_config.py``, with ``root`` / ``db_url`` (when given) in its place."""
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import Config
        from traitlets.config.loader import PyFileConfigLoader

        config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
        given = Config()
        if root:
            given.CourseDirectory.root = str(Path(root).resolve())
        if db_url:
            given.CourseDirectory.db_url = db_url
        config.merge(given)
        coursedir = CourseDirectory(config=config)
        return cls(Path(coursedir.root), coursedir.db_url, coursedir.course_id,
                   Path(exchange).resolve() if exchange else None)

    def exchange_root(self) -> Path:
        """--exchange, else nbgrader's Exchange.root of the configuration."""
        if self.exchange is not None:
            return self.exchange
        from traitlets.config.loader import PyFileConfigLoader

        config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
        return Path(config.Exchange.root if "root" in config.Exchange else "/srv/nbgrader/exchange")

    def traitlets(self) -> dict:
        """This course as traitlets options ({Section: {option: value}}) for nbgrader."""
        return {"CourseDirectory": {"root": str(self.root), "db_url": self.db_url}}

    def nbgrader(self, *args: str) -> list[str]:
        argv = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={self.root}",
                f"--CourseDirectory.db_url={self.db_url}"]
        if self.exchange is not None:
            argv.append(f"--Exchange.root={self.exchange}")
        return argv

    def record(self, student: str, assignment: str) -> Path:
        """Where the hooks write this submission's grade record."""
        return records.record_path(self.root, assignment, student)

    def submitted(self, student: str, assignment: str) -> Path:
        return self.root / "submitted" / student / assignment

    def autograded(self, student: str, assignment: str) -> Path:
        return self.root / "autograded" / student / assignment


STATUS_GRADED, STATUS_SKIPPED, STATUS_FAILED = STATUSES = ("graded", "skipped", "failed")


@dataclass
class Result:
    """One submission's outcome in ``autograde``: graded, skipped (unchanged since its record) or
    failed (not gradable: ``problems`` says why)."""
    student: str
    status: str  # one of STATUSES
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
    if expected.is_symlink() or (expected.exists() and not expected.is_file()):
        return f"notebook {suite.NOTEBOOK} is not a regular file (a link or special file is never followed)"
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

    from autograder.nbgrader_hooks import KERNEL_PROBLEMS

    found = []
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:
        return ["autograded notebook unreadable"]
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") in KERNEL_PROBLEMS:
                found.append(f"{out['ename']}: {out.get('evalue', '')}"[:120])
    return found


@dataclass
class Settings:
    """What ``autograde`` was asked for, beyond the course: traitlets options for the hooks
    (device, timeouts) and the per-submission limit the parent enforces."""

    regrade: bool = False
    timeout: float = 1800.0
    device: str = ""
    cell_timeout: int | None = None
    notebook_timeout: int | None = None
    call_timeout: int | None = None

    def traitlets(self) -> dict:
        traits: dict = {}
        if self.device:
            for section in ("StartTrustedGrading", "SandboxedExecute", "TrustedVerdicts", "ApplyLatePolicy"):
                traits[section] = {"device": self.device}
        if self.cell_timeout is not None:
            traits.setdefault("SandboxedExecute", {})["timeout"] = self.cell_timeout
        if self.notebook_timeout is not None:
            traits.setdefault("SandboxedExecute", {})["notebook_timeout"] = self.notebook_timeout
        if self.call_timeout is not None:
            from autograder.nbgrader_hooks.settings import HIDDEN_SUITE_STEPS
            for section in HIDDEN_SUITE_STEPS:
                traits.setdefault(section, {})["call_timeout"] = self.call_timeout
        return traits


def already_graded(course: Course, assignment: str, student: str, digest: str) -> dict | None:
    """The grade record of this very submission (same hash of the submitted folder), or None."""
    try:
        record = records.read_record(course.record(student, assignment))
    except records.RecordError:
        return None
    return record if record.get("submission_sha256") == digest else None


def fresh_record(course: Course, assignment: str, student: str, since: float) -> dict:
    """The grade record written by the grading that started at ``since`` (epoch seconds);
    RecordError saying why there is none (missing, corrupt, or older than this grading)."""
    path = course.record(student, assignment)
    try:
        record = records.read_record(path)
    except records.RecordError as err:
        raise records.RecordError(f"nbgrader finished but left no grade record ({err}): "
                                  "did nbgrader_config.py load autograder.nbgrader_hooks?") from None
    try:
        written = datetime.datetime.fromisoformat(record["graded_at"]).timestamp()
    except (TypeError, ValueError):
        raise records.RecordError(f"grade record {path} has no readable graded_at ({record['graded_at']!r})") from None
    if written < int(since):  # graded_at has whole seconds
        raise records.RecordError(f"nbgrader finished but wrote no new grade record (the one at {path} is "
                                  f"from {record['graded_at']}): did nbgrader_config.py load the hooks?")
    return record


def grade_one(course: Course, suite, assignment: str, student: str, worker, settings: Settings) -> Result:
    """Grade one submission with ``worker`` (an :class:`autograder.worker.Worker`) and decide
    from its grade record. Never raises for a problem of the submission."""
    from autograder.nbgrader_hooks import submission_sha256
    from autograder.worker import WorkerDied

    start = time.monotonic()
    reason = preflight(course, suite, assignment, student)
    if reason is not None:
        if course.submitted(student, assignment).is_dir():
            record_zero(course, assignment, student)
            return Result(student, STATUS_FAILED, *_scores(course, assignment, student),
                          time.monotonic() - start, [reason, *_refused(course, assignment, student)])
        return Result(student, STATUS_FAILED, None, None, time.monotonic() - start,
                      [reason, *_refused(course, assignment, student)])
    digest = submission_sha256(course.submitted(student, assignment))
    done = None if settings.regrade else already_graded(course, assignment, student, digest)
    if done is not None:
        return Result(student, STATUS_SKIPPED, done["score"], done["max_score"], 0.0,
                      ["already graded (same submission); --regrade to redo"])
    log_dir = course.root / "autograded" / ".logs" / assignment
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{student}.log"
    where = f" (log: {log_path.relative_to(course.root)})"
    for attempt in range(LOCKED_RETRIES):
        since = time.time()
        try:
            reply = worker.grade(assignment, student, log_path, settings.timeout)
        except WorkerDied as err:
            return _failed(course, assignment, student, start, since, str(err), where)
        if reply["ok"] or not reply["locked"] or attempt == LOCKED_RETRIES - 1:
            break
        time.sleep(1 + attempt)
    if not reply["ok"]:
        return _failed(course, assignment, student, start, since, f"nbgrader failed: {reply['error']}", where)
    try:
        record = fresh_record(course, assignment, student, since)
    except records.RecordError as err:
        return Result(student, STATUS_FAILED, None, None, time.monotonic() - start, [f"{err}{where}"])
    if record.get("submission_sha256") != digest:
        return Result(student, STATUS_FAILED, None, None, time.monotonic() - start,
                      ["the submission changed while it was graded: run autograde again"])
    return Result(student, STATUS_GRADED, record["score"], record["max_score"], time.monotonic() - start,
                  _problems(course.autograded(student, assignment) / suite.NOTEBOOK) + _refused(course, assignment, student))


def _refused(course: Course, assignment: str, student: str) -> list[str]:
    """The entries of this submission that collect or autograde refused (links, devices, ...)."""
    from autograder.exchange import read_refusals

    return [f"refused {line}" for line in read_refusals(course.root, assignment, student)]


def _failed(course: Course, assignment: str, student: str, start: float, since: float, reason: str,
            where: str) -> Result:
    """A submission whose grading did not finish: a record this attempt may have written
    before the failure is removed (its grade did not reach the gradebook, so a rerun must
    not skip the submission)."""
    try:
        fresh_record(course, assignment, student, since)
        course.record(student, assignment).unlink()
    except (records.RecordError, OSError):
        pass
    return Result(student, STATUS_FAILED, None, None, time.monotonic() - start, [f"{reason}{where}"])


def visible_gpu_ids(count: int) -> list[str]:
    """The ids a worker may put in CUDA_VISIBLE_DEVICES: the inherited list when one is set
    (a Slurm task bound to GPUs "2,3" must stay on them), else 0 .. count-1."""
    inherited = [g.strip() for g in (options.cuda_visible_devices() or "").split(",") if g.strip()]
    return inherited[:count] if inherited else [str(i) for i in range(count)]


def seconds_flag(text: str) -> int:
    """argparse type of the time-limit flags: the rule of their environment variables
    (:func:`autograder.options.seconds`), a clear error otherwise."""
    try:
        return options.seconds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None


def autograde(course: Course, assignment: str, students: list[str] | None, workers: int,
              require_gpu: bool, settings: Settings, as_json: bool = False) -> int:
    """Grade the submissions; print the table of results (``as_json``: one JSON object on stdout,
    :func:`results_json`, and the table on stderr). Exit status 0, 1 if one was not gradable,
    2 bad input, 128+N when signal N (SIGTERM, SIGINT) stopped it (:class:`StopOnSignal`)."""
    import torch
    from tqdm import tqdm

    from autograder.suites import load_suite

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if require_gpu and gpus == 0:
        print("autograde: --require-gpu, but torch sees no CUDA device "
              f"(torch {torch.__version__}, CUDA_VISIBLE_DEVICES={options.cuda_visible_devices()!r})",
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
    from autograder import calendar  # the late policy needs a valid, audited calendar: say so once, grade nothing
    try:
        calendar.load(course.root)
    except calendar.CalendarError as err:
        print(f"autograde: {err}", file=sys.stderr)
        return 2
    if students is None:
        base = course.root / "submitted"
        students = sorted(p.parent.name for p in base.glob(f"*/{assignment}") if p.is_dir())
    workers = max(1, min(workers, len(students) or 1))
    device_note = f"{gpus} GPU(s), one per worker" if gpus else "CPU"
    out = sys.stderr if as_json else sys.stdout  # what a person reads
    print(f"grading {len(students)} submission(s) of {assignment} with {workers} worker(s) on {device_note}", file=out)
    started = time.monotonic()
    todo: queue.Queue = queue.Queue()
    for student in students:
        todo.put(student)
    results: list[Result] = []
    progress = tqdm(total=len(students), unit="sub", file=sys.stderr)
    gpu_ids = visible_gpu_ids(gpus)
    share = options.grading_threads(workers)  # the CPUs shared out among the workers' sandboxes
    live: list = []  # every thread's Worker, for the stop handler
    threads = [threading.Thread(target=_work, args=(course, suite, assignment, settings, todo, results, progress,
                                                    gpu_ids[i % len(gpu_ids)] if gpu_ids else None, i, share, live))
               for i in range(workers)]
    with StopOnSignal(todo, live) as stop:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    progress.close()
    results.sort(key=lambda r: r.student)
    wall = time.monotonic() - started
    print_summary(results, wall, file=out)
    if stop.signal is not None:
        print(f"autograde: stopped by {stop.signal.name}: {len(stop.left)} submission(s) not started "
              f"({', '.join(sorted(stop.left)) or 'none'}), those being graded failed (no record kept); "
              f"run the same command again to grade them", file=sys.stderr)
        if as_json:
            print(json.dumps(results_json(assignment, results, wall, workers), indent=1))
        return 128 + stop.signal
    from autograder import calendar, late  # settle late days spent across assignments (no code run)
    try:
        for c in late.recompute(course.root, course.db_url)[0]:
            print(f"late days re-spent: {c.assignment} {c.student}: final {c.before:g} -> {c.after:g}", file=out)
    except calendar.CalendarError as err:
        print(f"autograde: {err}", file=sys.stderr)
    if as_json:
        print(json.dumps(results_json(assignment, results, wall, workers), indent=1))
    return 1 if any(r.status == STATUS_FAILED for r in results) else 0


class StopOnSignal:
    """While grading: SIGTERM (Slurm's ``scancel``, a TA's ``kill``) or SIGINT (Ctrl-C) stops it
    cleanly instead of killing this process mid-way. The handler empties ``todo`` (kept in
    ``left``) and stops every worker in ``live`` (:meth:`autograder.worker.Worker.stop`); each worker's
    thread then sees its worker die, fails its submission (no record kept) and removes the
    worker's folder -- which a process killed by the signal itself could not (Slurm sends SIGKILL
    only ``KillWait`` seconds later). ``signal``: the signal that stopped grading, or None."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, todo: queue.Queue, live: list):
        self.todo, self.live = todo, live
        self.signal: signal.Signals | None = None
        self.left: list[str] = []
        self._before: dict = {}

    def _handle(self, signum, _frame) -> None:
        self.signal = self.signal or signal.Signals(signum)
        while True:
            try:
                self.left.append(self.todo.get_nowait())
            except queue.Empty:
                break
        for worker in list(self.live):
            worker.stop()

    def __enter__(self) -> "StopOnSignal":
        self._before = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._before.items():
            signal.signal(s, handler)


def _work(course: Course, suite, assignment: str, settings: Settings, todo: queue.Queue, results: list,
          progress, gpu: str | None, index: int, threads: dict[str, str], live: list) -> None:
    """One worker thread: its own grading worker process (on ``gpu``, its sandboxes with
    ``threads``' thread counts) for submission after submission, until ``todo`` is empty.
    Every student it takes ends up in ``results``; its worker is put in ``live`` (for
    :class:`StopOnSignal`)."""
    from autograder.worker import Worker

    env = options.child_env(threads, PATH=options.path_with_python_bin())
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    log_dir = course.root / "autograded" / ".logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"worker-{index}.log", "ab") as stderr:
        worker = Worker({**course.traitlets(), **settings.traitlets()}, env=env, stderr=stderr)
        live.append(worker)
        try:
            while True:
                try:
                    student = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    result = grade_one(course, suite, assignment, student, worker, settings)
                except Exception as err:  # a bug of ours must not stop the batch either
                    result = Result(student, STATUS_FAILED, problems=[f"{type(err).__name__}: {err}"])
                results.append(result)
                progress.update(1)
        finally:
            worker.close()


def keep_on_time(course: Course, assignment: str) -> int:
    """After collect: keep each late student's last on-time submission (autograder/late.py)."""
    from autograder import calendar, late

    try:
        for line in late.keep_on_time(course.root, course.exchange_root(), course.course_id, assignment):
            print(line)
    except calendar.CalendarError as err:
        print(f"collect: collected, but no on-time copies were kept: {err}", file=sys.stderr)
        return 2
    return 0


def _assignment_known(course: Course, assignment: str) -> bool:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url, course.course_id) as gb:
        try:
            gb.find_assignment(assignment)
            return True
        except MissingEntry:
            return False


def print_summary(results: list[Result], wall: float, file=None) -> None:
    """The table a TA reads: a row per student (status, score, seconds, problems), then the counts."""
    file = file or sys.stdout
    width = max([7] + [len(r.student) for r in results])
    print(f"\n{'student':<{width}}  {'status':<7}  {'score':>11}  {'time':>6}  problems", file=file)
    for r in results:
        score = f"{r.score:g}/{r.max_score:g}" if r.score is not None else "-"
        print(f"{r.student:<{width}}  {r.status:<7}  {score:>11}  {r.seconds:5.1f}s  {'; '.join(r.problems)}", file=file)
    counts = status_counts(results)
    graded = [r.seconds for r in results if r.status == STATUS_GRADED]
    per = sum(graded) / len(graded) if graded else 0.0
    print(f"\n{counts[STATUS_GRADED]} graded, {counts[STATUS_SKIPPED]} skipped, {counts[STATUS_FAILED]} not gradable; "
          f"wall {wall:.1f} s, {per:.1f} s per graded submission (per worker)", file=file)


def status_counts(results: list[Result]) -> dict[str, int]:
    """How many results have each of :data:`STATUSES` (the table's last line, ``--json``'s counts)."""
    return {status: sum(r.status == status for r in results) for status in STATUSES}


def results_json(assignment: str, results: list[Result], wall: float, workers: int) -> dict:
    """``autograde --json``: what the table says, for scripts: every student's result
    (:class:`Result`'s fields) and the count per status."""
    return {"assignment": assignment, "workers": workers, "wall_s": round(wall, 1),
            "counts": status_counts(results),
            "results": [dataclasses.asdict(r) for r in results]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--course-root", help="course folder (default: env AUTOGRADER_COURSE_ROOT, else the "
                        "repo root)")
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
    grade.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout "
                       "(student, status, score, max_score, seconds, problems; the counts), the table on stderr")
    grade.add_argument("--require-gpu", action="store_true", help="fail unless a CUDA device is visible")
    grade.add_argument("--regrade", action="store_true", help="also regrade unchanged, already graded submissions")
    grade.add_argument("--timeout", type=float, default=1800, help="seconds per submission, all included")
    grade.add_argument("--device", choices=("cpu", "cuda"), help="grade on this device (default: env "
                       "AUTOGRADER_DEVICE, else cuda when torch sees a GPU, else cpu)")
    grade.add_argument("--cell-timeout", type=seconds_flag, help="seconds per notebook cell (default: "
                       f"env AUTOGRADER_CELL_TIMEOUT, else {options.CELL_TIMEOUT_S})")
    grade.add_argument("--notebook-timeout", type=seconds_flag, help="seconds for the whole notebook (default: "
                       f"env AUTOGRADER_NOTEBOOK_TIMEOUT, else {options.NOTEBOOK_TIMEOUT_S})")
    grade.add_argument("--call-timeout", type=seconds_flag, help="seconds per hidden call of a graded function (default: "
                       f"env AUTOGRADER_CALL_TIMEOUT, else each call's own, {options.CALL_TIMEOUT_S} unless the suite says)")
    replay = sub.add_parser("replay", help="regrade a student's recorded submission with the current suite "
                            "and list the differences (exit 0 same, 1 differences, 2 bad input)")
    replay.add_argument("assignment")
    replay.add_argument("student")
    replay.add_argument("--device", choices=("cpu", "cuda"), help="default: the device of the record")
    from autograder import calendar_cli  # due / extend / calendar / recompute-late (H21)
    calendar_cli.add_arguments(sub)
    from autograder import serve  # H22: checks before the deadline, answered through Fetch Feedback
    serve.add_arguments(sub.add_parser("serve", help="a long-running service grading each new submission in "
                                       "inbound before the deadline (budgeted, round-robin, durable); answers "
                                       "through Fetch Feedback; never the gradebook's grade"))
    export = sub.add_parser("export", help="grades CSV")
    export.add_argument("--to", default="grades.csv")
    # H23: --format canvas (autograder/lms.py) reads the grade records and a Canvas roster
    export.add_argument("--format", choices=("nbgrader", "canvas"), default="nbgrader",
                        help="nbgrader's CSV (default) or Canvas's gradebook import CSV (needs --roster)")
    from autograder import lms, report, similarity
    lms.add_arguments(export)
    report.add_arguments(sub.add_parser("report", help="the class report (HTML, or --json) from the grade records"))
    similarity.add_arguments(sub.add_parser("similarity", help="pairs of suspiciously similar submissions "
                                            "(HTML, or --json), from the grade records' graded code"))
    from autograder import publish  # H25: the public course repository
    publish.add_arguments(sub.add_parser(
        "publish", help="write the public course repository (book, lec4, release notebooks; no solutions, "
        "hidden tests or catalog) into a new folder DEST, one commit"))
    from autograder import selfcheck
    selfcheck.add_arguments(sub.add_parser(
        "selfcheck", help="grade the reference, the blank release and the catalog of faulty implementations "
        "in the production sandbox on this node; exit 1 on any miss"))
    args = parser.parse_args(argv)
    try:  # every AUTOGRADER_* variable parsed once, before any command reads or changes anything
        given = options.current()
    except options.OptionError as err:
        print(f"python -m autograder {args.command}: {err}; nothing was done", file=sys.stderr)
        return 2
    if args.command == "publish":  # H25: git and the repository's HEAD only
        return publish.run(args)
    # --course-root, else AUTOGRADER_COURSE_ROOT, else the repository: the same for every command
    # (the ones that run nbgrader get it through nbgrader_config.py: CourseDirectory.root)
    given_root = args.course_root or given.course_root
    course_root = Path(given_root).resolve() if given_root else ROOT
    if args.command == "selfcheck":  # needs neither nbgrader nor Jupyter (a bare GPU node runs it)
        return selfcheck.run(args, course_root)
    # H23: read the grade records under the course root; need no gradebook
    if args.command == "report":
        return report.run(args, course_root)
    if args.command == "similarity":
        return similarity.run(args, course_root)
    if args.command == "export" and args.format == "canvas":
        return lms.run(args, course_root)
    if args.command == "replay":  # reads the record under the course root; needs no gradebook
        return records.replay_main(course_root, args.assignment, args.student, args.device)

    # nbgrader runs `alembic` (gradebook migrations) from PATH: use the environment's own
    options.put_python_bin_on_path()
    course = Course.load(args.course_root, args.db_url, args.exchange)
    if args.command == "generate":
        return run_nbgrader(course, "generate_assignment", args.assignment, "--force")
    if args.command == "release":
        return release(course, args.assignment)
    if args.command == "collect":
        code = run_nbgrader(course, "collect", args.assignment, "--update")
        return code or keep_on_time(course, args.assignment)
    if args.command == "serve":  # H22
        return serve.run(args, course)
    if args.command in calendar_cli.COMMANDS:
        return calendar_cli.run(args, course)
    if args.command == "feedback":
        return run_nbgrader(course, "generate_feedback", args.assignment, "--force")
    if args.command == "release-feedback":
        return release_feedback(course, args.assignment)
    if args.command == "export":
        return run_nbgrader(course, "export", f"--to={Path(args.to).resolve()}")
    settings = Settings(regrade=args.regrade, timeout=args.timeout, device=args.device or "",
                        cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                        call_timeout=args.call_timeout)
    return autograde(course, args.assignment, args.student, args.workers, args.require_gpu, settings, args.json)
