"""Copies out of student-controlled folders that carry only regular files.

A student controls every byte of a submission folder in the exchange's inbound (the
folder is theirs by design), so anything there may be a trap for whoever copies it:

- a *symbolic link* to a file the student cannot read (the instructor's solution notebook,
  a hidden suite): a copy that follows it (``shutil.copytree``, ``shutil.copy``: what
  nbgrader 0.9.6's collect and autograde use) reads the target with the copier's rights
  -- root's or the TA's -- and hands its content to the student's code and feedback;
- a *hard link* to a file the student does not own (same effect, no link to see);
- a *device file* (``/dev/zero``: a copy that never ends), a *FIFO* (a copy that blocks
  forever), a *socket*.

:func:`copy_regular_files` is the one copy used wherever files leave a folder a student
could have shaped (collect, autograde's copy into ``autograded/`` and into the sandboxed
kernel's working folder): it walks the tree through file descriptors opened with
``O_NOFOLLOW`` (a link swapped in between looking and opening is refused too), copies
regular files and folders only, and returns one human line per refused entry. Those
lines reach the TA's autograde summary and that student's feedback
(:func:`write_refusals` keeps them next to the grade records); the rest of the
submission, and the rest of the class, is graded as usual.

:class:`SafeCollect` is nbgrader's collect with that copy, configured in
``nbgrader_config.py`` by ``c.ExchangeFactory.collect``. It also ignores a submission
folder that is not a real folder owned by the student it names (a student making
``student2+hw-attention+...`` in the shared inbound must not replace student2's work).
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Callable, Iterable

from nbgrader.exchange.default.collect import ExchangeCollect

REFUSED_DIR = ".refused"  # autograded/.refused/ASSIGNMENT/STUDENT.txt (beside autograded/.records)
_CHUNK = 1 << 20


class SubmissionTooLarge(RuntimeError):
    """The regular files of a tree add up to more than the copy's ``max_bytes``."""


def _describe(mode: int) -> str | None:
    """What kind of non-regular entry ``mode`` is (None: a regular file or a folder)."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "not a regular file"


def _refusal(rel: str, what: str, extra: str = "") -> str:
    return (f"{rel}: {what}{extra}; not copied (only regular files and folders are collected "
            "and graded)")


def _link_target(dir_fd: int, name: str) -> str:
    try:
        return f" to {os.readlink(name, dir_fd=dir_fd)}"
    except OSError:
        return ""


def copy_regular_files(src: Path, dest: Path | None, owner_uid: int | None = None, *,
                       ignore: Callable[[str, list[str]], Iterable[str]] | None = None,
                       max_bytes: int | None = None) -> list[str]:
    """Copy the tree ``src`` into ``dest`` (created; existing files replaced), regular files
    and folders only, never following a symbolic link; return one human line per refused entry.

    Refused (not copied, listed): symbolic links (``src`` itself included: then nothing is
    copied), device files, FIFOs, sockets, and -- when ``owner_uid`` is given -- a file with
    more than one hard link that ``owner_uid`` does not own (a hard link to someone else's
    file). ``owner_uid=None`` checks no owner (for copies out of staff-owned folders such as
    ``submitted/``). ``ignore``: like :func:`shutil.copytree`'s (folder, names) -> names to
    skip silently (nbgrader's ``CourseDirectory.ignore``/``include``/``max_file_size``).
    ``max_bytes``: :class:`SubmissionTooLarge` before anything is copied when the regular
    files add up to more. ``dest=None`` only lists the refusals (nothing is copied).
    Files keep their permission bits (without set-uid/gid) and modification times.
    """
    src = Path(src)
    try:
        top = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            try:
                mode = os.lstat(src).st_mode
            except OSError:
                mode = 0
            what = _describe(mode) or "not a folder"
            extra = f" to {os.readlink(src)}" if stat.S_ISLNK(mode) else ""
            return [f"{src.name}: the submission folder itself is {what}{extra}; nothing was copied"]
        raise
    try:
        refused: list[str] = []
        plan: list[tuple[str, str]] = []  # ("d"|"f", relative path) in walk order
        total = _scan(top, "", owner_uid, ignore, str(src), refused, plan)
        if max_bytes is not None and total > max_bytes:
            raise SubmissionTooLarge(f"{src}: {total} bytes of files, more than the {max_bytes} allowed")
        if dest is not None:
            _copy_planned(top, Path(dest), plan, owner_uid, refused)
        return refused
    finally:
        os.close(top)


def _scan(dir_fd: int, rel: str, owner_uid, ignore, shown: str, refused: list[str],
          plan: list[tuple[str, str]]) -> int:
    """Classify the entries under ``dir_fd`` (lstat only); fill ``refused`` and ``plan``."""
    total = 0
    names = sorted(os.listdir(dir_fd))
    skipped = set(ignore(os.path.join(shown, rel) if rel else shown, names)) if ignore else set()
    for name in names:
        if name in skipped:
            continue
        path = f"{rel}/{name}" if rel else name
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        what = _describe(st.st_mode)
        if what is not None:
            extra = _link_target(dir_fd, name) if stat.S_ISLNK(st.st_mode) else ""
            refused.append(_refusal(path, what, extra))
        elif stat.S_ISDIR(st.st_mode):
            plan.append(("d", path))
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            try:
                total += _scan(sub, path, owner_uid, ignore, shown, refused, plan)
            finally:
                os.close(sub)
        elif _foreign_hard_link(st, owner_uid):
            refused.append(_refusal(path, f"a hard link to a file owned by user id {st.st_uid}, not the "
                                    "submission's author"))
        else:
            plan.append(("f", path))
            total += st.st_size
    return total


def _foreign_hard_link(st: os.stat_result, owner_uid: int | None) -> bool:
    return owner_uid is not None and st.st_nlink > 1 and st.st_uid != owner_uid


def _open_below(top: int, rel: str) -> int:
    """A descriptor of the file ``rel`` under ``top``, no component followed if a link
    (an entry swapped for a link after the scan raises OSError ELOOP/ENOTDIR)."""
    parts = rel.split("/")
    fd = os.dup(top)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)


def _copy_planned(top: int, dest: Path, plan, owner_uid, refused: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for kind, rel in plan:
        target = dest / rel
        if kind == "d":
            target.mkdir(exist_ok=True)
            continue
        try:
            fd = _open_below(top, rel)
        except OSError as err:
            refused.append(_refusal(rel, f"changed while it was copied ({os.strerror(err.errno)})"))
            continue
        try:
            st = os.fstat(fd)
            what = _describe(st.st_mode)
            if what is not None or stat.S_ISDIR(st.st_mode):
                refused.append(_refusal(rel, f"changed while it was copied (now {what or 'a folder'})"))
                continue
            if _foreign_hard_link(st, owner_uid):
                refused.append(_refusal(rel, f"a hard link to a file owned by user id {st.st_uid}, not the "
                                        "submission's author"))
                continue
            if target.is_symlink() or target.exists():
                target.unlink()
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                while chunk := os.read(fd, _CHUNK):
                    os.write(out, chunk)
                os.fchmod(out, stat.S_IMODE(st.st_mode) & 0o777)
                os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(out)
        finally:
            os.close(fd)


def refused_entries(src: Path, owner_uid: int | None = None) -> list[str]:
    """The lines :func:`copy_regular_files` would return for ``src``, copying nothing."""
    return copy_regular_files(src, None, owner_uid)


# --- where refusals are kept for the TA's summary and the student's feedback ----------------------

STAGES = ("collect", "autograde")  # who refused: SafeCollect (inbound -> submitted/), SafeAutograde


def refusal_path(course_root: Path, assignment: str, student: str, stage: str = "collect") -> Path:
    """``autograded/.refused/ASSIGNMENT/STUDENT.STAGE.txt``: staff-owned, never inside a
    submission (so a student cannot forge or hide it) and beside the grade records."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
    return Path(course_root) / "autograded" / REFUSED_DIR / assignment / f"{student}.{stage}.txt"


def write_refusals(course_root: Path, assignment: str, student: str, lines: list[str],
                   stage: str = "collect") -> None:
    """Keep ``lines`` of ``stage`` (replacing its earlier ones); no lines: remove its note."""
    path = refusal_path(course_root, assignment, student, stage)
    if not lines:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines))
    os.replace(tmp, path)


def read_refusals(course_root: Path, assignment: str, student: str) -> list[str]:
    """Every refused entry of this submission, collect's then autograde's (no repeats)."""
    lines: list[str] = []
    for stage in STAGES:
        try:
            text = refusal_path(course_root, assignment, student, stage).read_text()
        except FileNotFoundError:
            continue
        lines += [line for line in text.splitlines() if line.strip() and line not in lines]
    return lines


def feedback_markdown(lines: list[str]) -> str:
    """The note at the top of the student's autograded notebook (and so of their feedback)."""
    items = "\n".join(f"- `{line.split(': ', 1)[0]}`: {line.split(': ', 1)[1] if ': ' in line else line}"
                      for line in lines)
    return ("**Not graded: entries of your submission that are not regular files.** The grader copies "
            "only regular files and folders; it never follows a link. These were left out:\n\n" + items)


# --- nbgrader's autograde -------------------------------------------------------------------------

def safe_autograde_class():
    """nbgrader's ``Autograde`` whose copies out of ``submitted/`` carry regular files only.

    nbgrader 0.9.6 copies a submission's other files into ``autograded/`` with
    ``shutil.copy`` (following links) and reads any notebook its glob finds (a link to the
    solutions would be graded and shown in feedback). Here: the submission is scanned
    (:func:`refused_entries`; the lines go to :func:`write_refusals` stage "autograde"), its
    files are copied with :func:`copy_regular_files`, and only notebooks that are regular
    files are graded. ``python -m autograder autograde``'s workers use it; ``submitted/`` is
    normally already clean (:class:`SafeCollect`), this is the second line.
    """
    from nbgrader.converters import Autograde
    from nbgrader.converters.base import BaseConverter
    from nbgrader.utils import is_ignored

    class RegularFilesCopy(BaseConverter):
        def init_assignment(self, assignment_id, student_id):  # BaseConverter's copy, made safe
            source = self._format_source(assignment_id, student_id)
            dest = self._format_dest(assignment_id, student_id)
            patterns = list(self.coursedir.ignore) + ["*.ipynb"]

            def ignore(folder, names):
                return [n for n in names if is_ignored(os.path.join(folder, n), patterns)]

            refused = refused_entries(Path(source))
            for line in copy_regular_files(Path(source), Path(dest), None, ignore=ignore):
                if line not in refused:
                    refused.append(line)
            for line in refused:
                self.log.warning("Refused in %s's submission: %s", student_id, line)
            write_refusals(Path(self.coursedir.root), assignment_id, student_id, refused, stage="autograde")

    class SafeAutograde(Autograde, RegularFilesCopy):
        def init_notebooks(self):
            super().init_notebooks()
            for folder, found in list(self.assignments.items()):
                regular = [nb for nb in found if stat.S_ISREG(os.lstat(nb).st_mode)]
                if regular:
                    self.assignments[folder] = regular
                else:
                    del self.assignments[folder]
            if not self.assignments:
                from nbgrader.converters.base import NbGraderException
                raise NbGraderException("no notebook of this submission is a regular file "
                                        "(links are not graded)")

    return SafeAutograde


# --- nbgrader's collect -----------------------------------------------------------------------------

def _uid_of(username: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(username).pw_uid
    except KeyError:
        return None


class SafeCollect(ExchangeCollect):
    """``nbgrader collect`` (and ``python -m autograder collect``) copying with
    :func:`copy_regular_files`: nothing a submission links to is read.

    A submission folder in inbound is used only when it is a real folder (not a link) owned
    by the user it names (when that user exists on this machine); other folders are skipped
    with a warning in the log (when a student has none left, nothing of theirs is replaced).
    Refused entries are logged and kept for autograde (:func:`write_refusals`), which shows
    them in the TA's summary and the student's feedback. nbgrader's size options
    (``CourseDirectory.max_dir_size``, ``max_file_size``, ``ignore``, ``include``) still apply.
    """

    def _acceptable(self, record: dict) -> str | None:
        """Why this inbound folder must not be collected for the user it names, or None."""
        path = os.path.join(self.inbound_path, record["filename"])
        try:
            st = os.lstat(path)
        except OSError as err:
            return f"cannot be read ({err.strerror})"
        if not stat.S_ISDIR(st.st_mode):
            what = _describe(st.st_mode) or "not a folder"
            return f"is {what}, not a submission folder"
        uid = _uid_of(record["username"])
        if uid is not None and st.st_uid != uid:
            return f"is owned by user id {st.st_uid}, not by {record['username']} (uid {uid})"
        return None

    def init_src(self):
        super().init_src()
        kept = []
        for record in self.src_records:
            reason = self._acceptable(record)
            if reason is None:
                kept.append(record)
            else:
                self.log.warning("Not collecting %s: it %s", record["filename"], reason)
        self.src_records = kept

    def _sort_by_timestamp(self, records):
        """Acceptable folders first (newest first), so each student's own newest
        submission wins over a forged or linked folder bearing their name."""
        ordered = super()._sort_by_timestamp(records)
        return [r for r in ordered if self._acceptable(r) is None] + \
               [r for r in ordered if self._acceptable(r) is not None]

    def do_copy(self, src, dest, log=None):
        from nbgrader.utils import ignore_patterns

        name = os.path.basename(src)
        student = name.split("+", 1)[0]
        ignore = ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                                 max_file_size=self.coursedir.max_file_size, log=self.log)
        try:
            refused = copy_regular_files(Path(src), Path(dest), _uid_of(student), ignore=ignore,
                                         max_bytes=1000 * self.coursedir.max_dir_size)
        except SubmissionTooLarge as err:
            self.log.error("Directory size is too big")
            raise RuntimeError(f"Directory size is too big: {err}") from None
        for line in refused:
            self.log.warning("Refused in %s's submission: %s", student, line)
        write_refusals(Path(self.coursedir.root), self.coursedir.assignment_id, student, refused)
        if self.coursedir.groupshared:  # what nbgrader's do_copy does after its copytree
            for dirname, _, filenames in os.walk(dest):
                os.chmod(dirname, (os.stat(dirname).st_mode | 0o2770) & 0o2777)
                for filename in filenames:
                    path = os.path.join(dirname, filename)
                    os.chmod(path, (os.stat(path).st_mode | 0o660) & 0o777)
