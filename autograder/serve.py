"""``python -m autograder serve``: students check their work against the hidden tests before the deadline.

A long-running service that watches the nbgrader exchange's inbound folder. Each new
submission (the student's *Submit* button) is graded by the course's grading workers
(:mod:`autograder.worker`, the production sandbox, the same hidden suite as ``autograde``) and
answered through nbgrader's feedback exchange: the student presses *Fetch Feedback* and gets
``feedback/TIMESTAMP/NOTEBOOK.html``. Nothing else changes for students or TAs.

What a student sees (:func:`render`) is decided by the assignment's public spec
(``lec4.homework.<assignment>``, or the suite for a test fixture):

- ``PRE_DEADLINE = {grade_id: "verdicts" | "count"}`` for every graded cell: ``verdicts`` shows
  each check's pass/fail and hint, ``count`` only "hidden tests: 7 of 9 passed" per task (the
  graded function). Hidden test source, inputs and points never appear.
- ``PRE_DEADLINE_CHECKS_PER_DAY = N``: at most N checks per student per rolling 24 h
  (``--checks-per-day`` overrides it for every assignment served). A submission over budget
  is answered at once with the time the next check becomes available; it is never dropped
  (it stays submitted, for the TA's collect).
- After the student's own due date (:func:`autograder.calendar.effective_due`, extensions
  included), judged by the time the service first saw the submission (a student-written
  ``timestamp.txt`` is not trusted), the answer says that checks are closed and that the
  grade comes from the TA's grading; nothing is run.

It never writes the grade that counts: grading happens in a course root and gradebook of its
own, ``STATE/course`` (``STATE/course/gradebook.db``), made by copying the course's
``solutions/ASSIGNMENT`` and running nbgrader's ``generate_assignment`` there. The TA's
``collect`` + ``autograde`` of the course root stay the grade.

Durable, fair, exactly once (``STATE``, default ``COURSE_ROOT/.serve``, mode 0700, staff-only):

- ``STATE/queue/{pending,running,done}/ID.json``: one file per inbound folder ``ID``, moved by
  ``os.replace`` (atomic) from pending to running (claimed by one grading thread) to done
  (answered). The answer file is written *before* the entry moves to done; on start, every
  ``running`` entry goes back to ``pending`` (it was being graded when the service died), unless
  its answer is already in the exchange. A second service on the same STATE refuses to start
  (``flock`` on ``STATE/lock``): no submission is graded twice at the same time.
- The budget is counted from the queue itself (entries ``charged`` and not ``refunded``,
  first seen in the last 24 h): no second book-keeping that could disagree with it.
- Round-robin: a free grading thread takes the oldest submission of the student served least
  recently, among students with no submission being graded (:func:`pick`).
- A worker that crashes or overruns ``--timeout`` (killed with its sandboxes, a fresh one
  started) answers "could not be checked, try again" and refunds the check.

Security: an inbound folder is taken only when it is a real folder owned by the OS user it
names (when that user exists; as SafeCollect does), so no one spends another's budget; its
files are copied with :func:`autograder.exchange.copy_regular_files` (links never followed).
The answer is written as nbgrader's ``release_feedback`` writes feedback: ``exchange/COURSE/
feedback/<md5(submission secret + notebook)>.html`` in a folder no student can list, named by
the secret only the submitting student's cache holds.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fcntl
import html
import importlib
import json
import os
import shutil
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from autograder import calendar, options, records

DAY = 86400.0
MODES = ("verdicts", "count")
QUEUES = ("pending", "running", "done")
FEEDBACK_DIR_MODE = 0o711  # nbgrader's release_feedback: enterable, not listable
MARK = '<meta name="generator" content="python -m autograder serve">'  # tells our answers from the TA's feedback


class ServeError(RuntimeError):
    """The service cannot start or serve an assignment; the message says what to fix."""


# --- the assignment's declarations ------------------------------------------------------------

@dataclasses.dataclass
class Policy:
    """What an assignment declares for checks before the deadline (see the module doc)."""

    assignment: str
    notebook: str
    grade_cells: dict[str, tuple[str, float]]
    visibility: dict[str, str]
    checks_per_day: int


def load_policy(assignment: str, checks_per_day: int | None = None) -> Policy:
    """The assignment's declarations from its public spec (``lec4.homework.<name>``), else from its
    suite (a test fixture); ServeError saying what is missing or wrong."""
    from autograder.suites import load_suite, module_name

    try:
        suite = load_suite(assignment)
    except ValueError as err:
        raise ServeError(str(err)) from None
    sources = [suite]
    try:
        sources.insert(0, importlib.import_module(f"lec4.homework.{module_name(assignment)}"))
    except ModuleNotFoundError:
        pass
    declared = next((m for m in sources if hasattr(m, "PRE_DEADLINE")), None)
    where = f"lec4.homework.{module_name(assignment)} (the public spec)"
    if declared is None:
        raise ServeError(f"{assignment}: no PRE_DEADLINE in {where}: declare, for every graded cell, "
                         f"'verdicts' or 'count' (what a check before the deadline shows)")
    visibility = dict(declared.PRE_DEADLINE)
    cells = dict(suite.GRADE_CELLS)
    problems = [f"{gid} is not declared" for gid in cells if gid not in visibility]
    problems += [f"{gid} is not a graded cell" for gid in visibility if gid not in cells]
    problems += [f"{gid}: {mode!r} is neither of {MODES}" for gid, mode in visibility.items() if mode not in MODES]
    budget = checks_per_day if checks_per_day is not None else getattr(declared, "PRE_DEADLINE_CHECKS_PER_DAY", None)
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        problems.append(f"PRE_DEADLINE_CHECKS_PER_DAY is {budget!r}: expected a whole number >= 0 "
                        "(or --checks-per-day N)")
    if problems:
        raise ServeError(f"{assignment}: PRE_DEADLINE of {where}: " + "; ".join(problems))
    return Policy(assignment, suite.NOTEBOOK, cells, visibility, budget)


# --- the durable queue ----------------------------------------------------------------------------

def _write_json(path: Path, data: dict) -> None:
    """Write atomically (temp file, fsync, rename): a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Store:
    """The service's state folder: the queue (one JSON file per submission, moved between
    ``pending``, ``running`` and ``done``) and the lock that keeps a second service out."""

    def __init__(self, state: Path):
        self.state = Path(state)
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o700)  # staff-only: queue entries name students and their results
        for name in QUEUES:
            (self.state / "queue" / name).mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Hold ``STATE/lock`` for this process's life; ServeError when another service holds it."""
        if self._lock_fd is not None:
            return
        fd = os.open(self.state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ServeError(f"another `python -m autograder serve` is running on {self.state} "
                             "(it holds STATE/lock): stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def path(self, where: str, entry_id: str) -> Path:
        return self.state / "queue" / where / f"{entry_id}.json"

    def entries(self, where: str) -> list[dict]:
        found = []
        for path in sorted((self.state / "queue" / where).glob("*.json")):
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError):
                continue  # a half-written temp file has another name; a vanished one moved on
        return found

    def add(self, entry: dict, where: str = "pending") -> None:
        _write_json(self.path(where, entry["id"]), entry)

    def move(self, entry: dict, src: str, dest: str) -> None:
        """Write ``entry`` (updated) to ``dest`` and remove it from ``src``: the rename is the commit."""
        _write_json(self.path(src, entry["id"]), entry)
        os.replace(self.path(src, entry["id"]), self.path(dest, entry["id"]))


# --- scheduling -----------------------------------------------------------------------------------

def pick(pending: list[dict], busy: set[str], last_served: dict[str, float], order: str = "round-robin") -> dict | None:
    """The next submission to grade: among students with nothing being graded (``busy``), the
    student served least recently (never served first), their oldest submission. ``order="fifo"``
    (for comparison only) takes the oldest submission of anyone, whoever is being graded."""
    oldest = lambda e: (e["seen_at"], e["id"])  # noqa: E731
    if order == "fifo":  # the naive queue, kept only to show what round-robin prevents (tests/test_serve.py)
        return min(pending, key=oldest) if pending else None
    ready = [e for e in pending if e["student"] not in busy]
    if not ready:
        return None
    return min(ready, key=lambda e: (last_served.get(e["student"], float("-inf")), *oldest(e)))


# --- answers --------------------------------------------------------------------------------------

def when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def budget_lines(policy: Policy, used: list[float], now: float) -> list[str]:
    """How many checks are left and when the next one frees up."""
    left = max(0, policy.checks_per_day - len(used))
    lines = [f"Checks left for {policy.assignment} in the last 24 hours: {left} of {policy.checks_per_day}."]
    if used and left == 0:
        lines.append(f"Your next check is available at {when(min(used) + DAY)} "
                     f"(in {calendar.duration(max(0.0, min(used) + DAY - now))}).")
    return lines


def render(title: str, paragraphs: list[str], tasks: list[tuple[str, list[str]]] = ()) -> str:
    """A small self-contained HTML page (no script, no external resource); all text escaped."""
    body = "".join(f"<p>{html.escape(p)}</p>\n" for p in paragraphs)
    for task, lines in tasks:
        items = "".join(f"<li class=\"{'fail' if line.startswith('FAIL') else 'ok'}\">{html.escape(line)}</li>\n"
                        for line in lines)
        body += f"<h2>{html.escape(task)}</h2>\n<ul>\n{items}</ul>\n"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{MARK}<title>{html.escape(title)}</title>\n"
            "<style>body{font-family:sans-serif;max-width:48em;margin:2em auto;line-height:1.4}"
            ".fail{color:#a40000}.ok{color:#1a5e1a}</style></head>\n"
            f"<body>\n<h1>{html.escape(title)}</h1>\n{body}</body></html>\n")


def task_lines(policy: Policy, record: dict) -> list[tuple[str, list[str]]]:
    """Per graded function, what the spec lets a student see before the deadline: each check
    ("PASS name" / "FAIL name: hint") of ``verdicts`` cells, and one count over its ``count`` cells."""
    tasks: dict[str, list[str]] = {}
    counts: dict[str, list[int]] = {}
    for gid, (function, _points) in policy.grade_cells.items():
        cell = record["cells"].get(gid, {"checks": []})
        lines = tasks.setdefault(function, [])
        if policy.visibility[gid] == "verdicts":
            for check in cell["checks"]:
                lines.append(f"PASS {check['name']}" if check["passed"] else f"FAIL {check['name']}: {check['hint']}")
        else:
            tally = counts.setdefault(function, [0, 0])
            tally[0] += sum(1 for c in cell["checks"] if c["passed"])
            tally[1] += len(cell["checks"])
    for function, (passed, total) in counts.items():
        tasks[function].append(f"{'OK' if passed == total else 'FAIL'} hidden tests (shown as a count before the "
                               f"deadline): {passed} of {total} passed")
    return list(tasks.items())


# --- grading --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    """What grading one submission gave: ``checked`` (``record`` holds the verdicts), ``crashed``
    (the worker died, overran or nbgrader failed: try again, refunded) or ``unusable`` (the
    submission cannot be run, ``reason`` says why: refunded)."""

    status: str
    record: dict | None = None
    reason: str = ""
    refused: list[str] = dataclasses.field(default_factory=list)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class WorkerGrader:
    """Grades with :class:`autograder.worker.Worker` processes (one per grading thread) in the
    service's own course root and gradebook (never the course's gradebook)."""

    def __init__(self, course_root: Path, state: Path, course_id: str, assignments: list[str], device: str = "",
                 timeout: float = 600.0, workers: int = 1):
        from autograder.cli import Course, Settings

        self.source_root, self.state = Path(course_root), Path(state)
        self.course = Course(Path(state) / "course", f"sqlite:///{Path(state) / 'course' / 'gradebook.db'}", course_id)
        self.settings = Settings(timeout=timeout, device=device)
        self.assignments = assignments
        self.workers: dict[int, object] = {}
        self.threads = options.grading_threads(workers)  # the CPUs shared out among the workers' sandboxes
        self.log_dir = self.course.root / "autograded" / ".logs"

    def reap(self) -> list[int]:
        """Kill the grading workers (process groups: their sandboxes too) a killed service left running,
        so that no submission is graded twice at the same time; the groups killed."""
        killed = []
        for pid_file in sorted((self.state / "workers").glob("*.pgid")):
            pgid = int(pid_file.read_text())
            try:
                cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes()
            except OSError:
                cmdline = b""
            if b"autograder.worker" in cmdline:
                try:
                    os.killpg(pgid, 9)
                    killed.append(pgid)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while killed and _running(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            scratch = pid_file.with_suffix(".scratch")  # what the killed worker could not remove itself
            if scratch.exists():
                shutil.rmtree(scratch.read_text(), ignore_errors=True)
                scratch.unlink()
            pid_file.unlink()
        return killed

    def prepare(self) -> None:
        """The service's course: each assignment's instructor notebooks copied, generated into its gradebook."""
        from autograder.cli import _assignment_known

        options.put_python_bin_on_path()  # nbgrader runs alembic
        self.course.root.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for assignment in self.assignments:
            source = self.source_root / "solutions" / assignment
            if not source.is_dir():
                raise ServeError(f"no instructor notebooks {source}: serve reads the course's solutions/ASSIGNMENT")
            target = self.course.root / "solutions" / assignment
            if target.exists() and _assignment_known(self.course, assignment):
                same = all((target / p.relative_to(source)).is_file() and
                           (target / p.relative_to(source)).read_bytes() == p.read_bytes()
                           for p in source.rglob("*") if p.is_file())
                if same:
                    continue
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, symlinks=False)
            with open(self.log_dir / "generate.log", "ab") as log:
                import subprocess

                code = subprocess.run(self.course.nbgrader("generate_assignment", assignment, "--force"),
                                      stdout=log, stderr=subprocess.STDOUT).returncode
            if code:
                raise ServeError(f"nbgrader generate_assignment {assignment} failed in {self.course.root} "
                                 f"(log: {self.log_dir / 'generate.log'})")

    def worker(self, index: int):
        from autograder.worker import Worker

        if index not in self.workers or self.workers[index].proc is None:
            env = options.child_env(self.threads)
            if self.settings.device == "cuda":  # one GPU per worker, as autograde does
                import torch

                from autograder.cli import visible_gpu_ids

                gpus = visible_gpu_ids(torch.cuda.device_count())
                if gpus:
                    env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
            stderr = open(self.log_dir / f"worker-{index}.log", "ab")
            self.workers[index] = Worker({**self.course.traitlets(), **self.settings.traitlets()}, env=env,
                                         stderr=stderr)
        return self.workers[index]

    def __call__(self, entry: dict, index: int) -> Outcome:
        from autograder.cli import fresh_record, preflight
        from autograder.exchange import _uid_of, copy_regular_files
        from autograder.nbgrader_hooks import submission_sha256
        from autograder.suites import load_suite
        from autograder.worker import WorkerDied

        assignment, student = entry["assignment"], entry["student"]
        dest = self.course.submitted(student, assignment)
        shutil.rmtree(dest, ignore_errors=True)
        refused = copy_regular_files(Path(entry["inbound"]), dest, _uid_of(student))
        suite = load_suite(assignment)
        reason = preflight(self.course, suite, assignment, student)
        if reason is not None:
            return Outcome("unusable", reason=reason, refused=refused)
        digest = submission_sha256(dest)
        log = self.log_dir / assignment / f"{student}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        since = time.time()
        worker = self.worker(index)
        if worker.proc is None or worker.proc.poll() is not None:
            worker.start()
            (self.state / "workers").mkdir(exist_ok=True)  # killed by the next start if this service dies
            (self.state / "workers" / f"{index}.scratch").write_text(str(worker.scratch))  # and this removed
            (self.state / "workers" / f"{index}.pgid").write_text(str(worker.proc.pid))
        try:
            reply = worker.grade(assignment, student, log, self.settings.timeout)
        except WorkerDied as err:
            return Outcome("crashed", reason=str(err), refused=refused)
        if not reply["ok"]:
            return Outcome("crashed", reason=f"nbgrader failed: {reply['error']}", refused=refused)
        try:
            record = fresh_record(self.course, assignment, student, since)
        except records.RecordError as err:
            return Outcome("crashed", reason=str(err), refused=refused)
        if record.get("submission_sha256") != digest:
            return Outcome("crashed", reason="the copy changed while it was graded", refused=refused)
        return Outcome("checked", record=record, refused=refused)

    def close(self) -> None:
        """Kill the workers now (a submission being graded stays in ``running``: the next start grades
        it again); waiting for a long grading would outlast the hub's stop."""
        for worker in self.workers.values():
            worker.stop()  # a grading thread starts no new worker after this
            worker.kill()
            if worker.stderr is not None:
                worker.stderr.close()
        for pid_file in (self.state / "workers").glob("*.pgid"):
            pid_file.unlink()
            pid_file.with_suffix(".scratch").unlink(missing_ok=True)


# --- the service ----------------------------------------------------------------------------------

class Service:
    """Scan inbound, answer at once (over budget, after the deadline) or queue, grade, answer.

    ``grade``: ``(entry, thread_index) -> Outcome`` (a :class:`WorkerGrader`; tests inject others).
    ``clock``: epoch seconds (tests move time). ``order``: "round-robin" (or "fifo", to compare).
    """

    def __init__(self, course_root: Path, exchange: Path, course_id: str, state: Path, policies: dict[str, Policy],
                 grade: Callable[[dict, int], Outcome], workers: int = 1, poll: float = 1.0,
                 order: str = "round-robin", clock: Callable[[], float] = time.time, log=None):
        self.course_root, self.exchange, self.course_id = Path(course_root), Path(exchange), course_id
        self.store = Store(state)
        self.policies, self.grade, self.workers, self.poll, self.order = policies, grade, workers, poll, order
        self.clock = clock
        self.log = log or (lambda text: print(text, flush=True))
        self.cond = threading.Condition()
        self.pending: dict[str, dict] = {}
        self.busy: set[str] = set()
        self.last_served: dict[str, float] = {}
        self.known: set[str] = set()
        self.charges: dict[tuple[str, str], dict[str, float]] = {}  # (assignment, student) -> {id: seen_at}
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    # paths of the exchange
    @property
    def inbound(self) -> Path:
        return self.exchange / self.course_id / "inbound"

    @property
    def feedback(self) -> Path:
        return self.exchange / self.course_id / "feedback"

    def start(self) -> None:
        """Lock the state, recover what a killed service left, start the grading threads."""
        from nbgrader.utils import notebook_hash  # noqa: F401  (imported now, not while a student waits)

        self.store.lock()
        self.open_feedback()
        for entry in self.store.entries("done"):
            self._remember(entry)
        for entry in self.store.entries("running"):  # the service died while grading it
            if entry.get("answer") and all(Path(p).exists() for p in entry["answer"]["files"]):
                self.store.move(entry, "running", "done")
            else:
                self.store.move(entry, "running", "pending")
                self.log(f"recovered {entry['id']}: it was being graded when the service stopped; grading it again")
        for entry in self.store.entries("pending"):
            self._remember(entry)
            self.pending[entry["id"]] = entry
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, args=(i,), name=f"serve-grader-{i}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def open_feedback(self) -> bool:
        """Make the feedback exchange folder if the course's exchange folder exists (the instructor's
        release makes that one: the service never creates it, or the instructor could not release) and
        the folder is missing, as nbgrader's release_feedback would: the course folder's owner and
        group, 0711, plus group write and set-gid when the course folder is group-shared (so the TA's
        release-feedback can still write there). Whether the folder is there."""
        course = self.exchange / self.course_id
        if not course.is_dir() or course.is_symlink():
            return False
        try:
            os.mkdir(self.feedback)
        except FileExistsError:
            return self.feedback.is_dir()
        st = os.stat(course)
        os.chmod(self.feedback, FEEDBACK_DIR_MODE | (0o2070 if st.st_mode & stat.S_ISGID else 0))
        if os.geteuid() == 0:
            os.chown(self.feedback, st.st_uid, st.st_gid)
        return True

    def _remember(self, entry: dict) -> None:
        self.known.add(entry["id"])
        if entry.get("charged") and not entry.get("refunded"):
            self.charges.setdefault((entry["assignment"], entry["student"]), {})[entry["id"]] = entry["seen_at"]

    def used(self, assignment: str, student: str, now: float) -> list[float]:
        """When the checks that count against the budget were first seen (the last 24 h)."""
        with self.cond:
            return sorted(t for t in self.charges.get((assignment, student), {}).values() if now - t < DAY)

    # inbound
    def scan(self) -> int:
        """Take every new inbound folder of a served assignment; the number taken."""
        try:
            names = sorted(os.listdir(self.inbound))
        except FileNotFoundError:
            return 0
        taken = 0
        for name in names:
            if name in self.known or name.startswith("."):
                continue
            parts = name.split("+")
            if len(parts) < 3 or parts[1] not in self.policies:
                continue
            if not self._complete(name):  # nbgrader's submit is still copying it (it writes the secret last)
                continue
            self.known.add(name)
            reason = self._not_theirs(name, parts[0])
            if reason:
                self.log(f"ignored inbound/{name}: {reason}")
                self.store.add({"id": name, "student": parts[0], "assignment": parts[1], "seen_at": self.clock(),
                                "status": "ignored", "reason": reason}, "done")
                continue
            self._admit({"id": name, "student": parts[0], "assignment": parts[1], "inbound": str(self.inbound / name),
                         "seen_at": self.clock()})
            taken += 1
        return taken

    def _complete(self, name: str) -> bool:
        try:
            st = os.lstat(self.inbound / name / "submission_secret.txt")
        except OSError:
            return not (self.inbound / name).is_dir() or (self.inbound / name).is_symlink()  # judged below
        return st.st_size > 0 or not stat.S_ISREG(st.st_mode)

    def _not_theirs(self, name: str, student: str) -> str | None:
        from autograder.exchange import _uid_of

        try:
            st = os.lstat(self.inbound / name)
        except OSError as err:
            return f"cannot be read ({err.strerror})"
        if not stat.S_ISDIR(st.st_mode):
            return "is not a real folder"
        uid = _uid_of(student)
        if uid is not None and st.st_uid != uid:
            return f"is owned by user id {st.st_uid}, not by {student} (uid {uid})"
        return None

    def _admit(self, entry: dict) -> None:
        policy = self.policies[entry["assignment"]]
        now = entry["seen_at"]
        due, ext = calendar.effective_due(calendar.load(self.course_root), entry["assignment"], entry["student"])
        entry["due"] = calendar.iso(due)
        if due is not None and now >= due.timestamp():
            whose = f"your extended due date ({ext.reason})" if ext else "the due date"
            self._answer(entry, "closed", [
                f"Checks before the deadline are closed: {whose} for {policy.assignment} was "
                f"{when(due.timestamp())}, and this submission arrived at {when(now)}.",
                "Nothing was run. Your grade and its full feedback come from the course staff's grading "
                "of your submission, as the course's late policy says."])
            return
        used = self.used(entry["assignment"], entry["student"], now)
        if len(used) >= policy.checks_per_day:
            self._answer(entry, "over-budget", [
                f"Not checked: you have used all {policy.checks_per_day} checks of {policy.assignment} "
                "allowed in 24 hours.", *budget_lines(policy, used, now)[1:],
                "Your submission is still submitted as usual (the course staff's grading uses it as the policy "
                "says); only this check was skipped."])
            return
        entry["charged"] = True
        self.store.add(entry)
        with self.cond:
            self._remember(entry)
            self.pending[entry["id"]] = entry
            self.cond.notify()

    # answers
    def _answer(self, entry: dict, status: str, paragraphs: list[str], tasks=(), where: str | None = None) -> None:
        """Write the answer into the feedback exchange, then record the entry as done (in that order:
        a crash between the two answers it again into the same file, never twice)."""
        policy = self.policies[entry["assignment"]]
        title = f"Check before the deadline: {policy.assignment} (not your grade)"
        page = render(title, [f"Submitted {entry['id'].split('+')[2]} (seen by the checker {when(entry['seen_at'])})",
                              *paragraphs], tasks)
        files = self._deliver(entry, page)
        entry.update(status=status, answered_at=self.clock(), answer={"files": files, "text": paragraphs})
        if where is None:
            self.store.add(entry, "done")
        else:
            self.store.move(entry, where, "done")
        self.log(f"answered {entry['id']}: {status}")

    def _deliver(self, entry: dict, page: str) -> list[str]:
        """nbgrader's feedback file for every notebook of the submission (Fetch Feedback finds it)."""
        from nbgrader.utils import notebook_hash

        folder = Path(entry["inbound"])
        try:
            fd = os.open(folder / "submission_secret.txt", os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, encoding="utf-8") as f:
                secret = f.read()
        except OSError:
            secret = None
        names = sorted(p.stem for p in folder.glob("*.ipynb") if p.is_file() and not p.is_symlink())
        if not self.open_feedback():
            self.log(f"{entry['id']}: no feedback folder in the exchange ({self.feedback}); no answer written")
            return []
        if not secret or not names:
            self.log(f"{entry['id']}: no submission secret or notebook, so no feedback file can reach its author")
            return []
        files = []
        for notebook in names:
            dest = self.feedback / f"{notebook_hash(secret=secret, notebook_id=notebook)}.html"
            try:
                if MARK not in dest.read_text(encoding="utf-8", errors="replace"):
                    self.log(f"{entry['id']}: the course staff's feedback is already released for it; not replaced")
                    continue
            except FileNotFoundError:
                pass
            tmp = dest.with_name(f".{dest.name}.tmp")
            tmp.write_text(page, encoding="utf-8")
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
            files.append(str(dest))
        return files

    # grading threads
    def _work(self, index: int) -> None:
        while not self.stopping.is_set():
            with self.cond:
                entry = pick(list(self.pending.values()), self.busy, self.last_served, self.order)
                if entry is None:
                    self.cond.wait(0.5)
                    continue
                del self.pending[entry["id"]]
                self.busy.add(entry["student"])
                self.last_served[entry["student"]] = time.monotonic()
                entry["started_at"] = self.clock()
                self.store.move(entry, "pending", "running")
            try:
                self._grade_and_answer(entry, index)
            finally:
                with self.cond:
                    self.busy.discard(entry["student"])
                    self.cond.notify_all()

    def _grade_and_answer(self, entry: dict, index: int) -> None:
        policy = self.policies[entry["assignment"]]
        try:
            outcome = self.grade(entry, index)
        except Exception as err:  # a bug of ours: the student still gets an answer and the check back
            outcome = Outcome("crashed", reason=f"{type(err).__name__}: {err}")
        if self.stopping.is_set():  # stopped meanwhile (its worker killed): graded again at the next start
            self.log(f"{entry['id']}: left for the next start (the service is stopping)")
            return
        notes = [f"Not copied from your submission: {line}" for line in outcome.refused]
        if outcome.status == "checked":
            now = self.clock()
            record = outcome.record
            self._answer(entry, "checked", [
                "Your submission was graded by the course's hidden tests, in the same sandbox as the real grading. "
                "This is a check before the deadline, not your grade: what each hidden test shows here is set by "
                "the assignment.", f"Due {when(calendar.parse_datetime(entry['due'])[0].timestamp())}."
                if entry.get("due") else "No due date is set.",
                *budget_lines(policy, self.used(entry["assignment"], entry["student"], now), now), *notes],
                task_lines(policy, record), where="running")
            return
        with self.cond:  # refund: the check did not happen
            entry["refunded"] = True
            self.charges.get((entry["assignment"], entry["student"]), {}).pop(entry["id"], None)
        self.log(f"{entry['id']}: {outcome.status}: {outcome.reason}")
        if outcome.status == "unusable":
            text = [f"Your submission could not be checked: {outcome.reason}.",
                    "Fix it and submit again; this attempt did not count against your checks."]
        else:
            text = ["Your submission could not be checked (the checking service failed while grading it, "
                    "not because of a test result). Try again: submit once more; this attempt did not count "
                    "against your checks."]
        self._answer(entry, outcome.status, [*text, *notes], where="running")

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Scan every ``poll`` seconds until stopped (SIGTERM/SIGINT) or ``until()``."""
        while not self.stopping.is_set() and not (until and until()):
            self.scan()
            self.stopping.wait(self.poll)

    def idle(self) -> bool:
        with self.cond:
            return not self.pending and not self.busy

    def stop(self) -> None:
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()
        for thread in self.threads:
            thread.join(timeout=5)


# --- the command ----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assignment", nargs="+", help="the assignments to check (each declares PRE_DEADLINE in its spec)")
    parser.add_argument("--state", help="the service's staff-only folder (default: COURSE_ROOT/.serve)")
    parser.add_argument("--workers", type=int, default=1, help="grading workers (one per GPU with --device cuda)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when torch sees a GPU, else cpu")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per submission, all included")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between scans of inbound")
    parser.add_argument("--checks-per-day", type=int, help="override the specs' PRE_DEADLINE_CHECKS_PER_DAY")


def run(args, course) -> int:
    """``python -m autograder serve``: ``course`` is the CLI's :class:`autograder.cli.Course`."""
    import signal

    try:
        policies = {a: load_policy(a, args.checks_per_day) for a in args.assignment}
        state = Path(args.state).resolve() if args.state else course.root / ".serve"
        grader = WorkerGrader(course.root, state, course.course_id, args.assignment, args.device or "", args.timeout,
                              max(1, args.workers))
        service = Service(course.root, course.exchange_root(), course.course_id, state, policies, grader,
                          workers=max(1, args.workers), poll=args.poll)
        service.store.lock()  # before preparing: a second service must not touch the first's course
        service.open_feedback()
        for pgid in grader.reap():
            print(f"killed the grading worker (process group {pgid}) a stopped service left running", flush=True)
        grader.prepare()
        service.start()
    except (ServeError, calendar.CalendarError) as err:
        print(f"serve: {err}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: service.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: service.stopping.set())
    print(f"serving checks before the deadline of {', '.join(args.assignment)} from {service.inbound} "
          f"({args.workers} worker(s); state {state}; CPU used to prepare: {cpu_seconds():.1f} s)", flush=True)
    try:
        service.run()
    finally:
        service.stopping.set()
        grader.close()
        service.stop()
    print(f"serve: stopped (CPU used since start, grading workers and their sandboxes included: "
          f"{cpu_seconds():.1f} s)", flush=True)
    return 0


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its children that have ended (the grading
    workers, their sandboxes, nbgrader's generate): what the service has cost the machine."""
    import resource

    own, ended = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime
