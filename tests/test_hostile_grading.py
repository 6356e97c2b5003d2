"""Grading that one hostile student cannot use to read the solutions or take the node down.

One small class of the fixture assignment goes through the production path -- ``python -m
autograder collect`` from a real exchange folder, ``autograde --workers 2`` in the bubblewrap
sandbox, ``feedback`` -- once (module fixture); every test reads what that left:

- ``ann``: the reference submission; her 7/7 must not move whatever the others do;
- ``linky``: a folder crafted by hand in inbound holding links to the instructor's notebook and
  to the hidden suite, a FIFO, and a cell that prints what the link would have read; plus a
  second inbound folder of hers that is itself a link (to the solutions);
- ``sneaky``: the same links put straight into ``submitted/`` (a TA's careless ``cp -a``):
  autograde's own copies must not follow them either;
- ``nblink``: the submitted notebook itself is a link to the solutions notebook;
- ``hog``: its ``scaled_add`` writes into ``/tmp`` and a notebook cell into its working
  folder, 2 GiB each unless stopped;
- ``bomb``: its ``scaled_add`` asks for 64 GiB (the CPU sandbox's memory limit refuses it).

Engine-level tests (no nbgrader) check the GPU configuration's host-memory cap on this CPU
machine, the sandbox's writable places, its system-call filter (no disk reserved by fallocate,
on either system-call gate), and copy_regular_files on each kind of entry.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import autograde_results

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures"
ASSIGNMENT = "hw-fixture"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
COURSE_ID = "10423-lec4"
SOLUTION_MARK = "### BEGIN SOLUTION"  # in the instructor's notebook only
SUITE_MARK = "SECRET_SEED = 90417"  # in the hidden suite only
MiB = 2**20

PEEK = """for name in ('answers.txt', 'suite.py'):
    try:
        print(name, open(name).read()[:100000])
    except OSError as err:
        print(name, 'unreadable', err)
"""
FILL = """import os
def _fill(folder, total=2 * 2**30, chunk=64 * 2**20):
    os.makedirs(folder, exist_ok=True)
    block = b'x' * chunk
    for i in range(total // chunk):
        with open(os.path.join(folder, f'fill-{i}'), 'wb') as f:
            f.write(block)
"""


def cli(course: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env["AUTOGRADER_SUITE_PATH"] = str(FIXTURE / "suites")
    return subprocess.run([sys.executable, "-m", "autograder", "--course-root", str(course), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def reference() -> nbformat.NotebookNode:
    return nbformat.read(FIXTURE / "course" / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)


def _cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def released(course: Path) -> nbformat.NotebookNode:
    """The reference answers in the release notebook (no solution markers), as a student submits."""
    nb = nbformat.read(course / "assignments" / ASSIGNMENT / NOTEBOOK, as_version=4)
    ref = reference()
    for gid in ("scaled_add", "row_softmax"):
        lines = [l for l in _cell(ref, gid).source.splitlines() if "SOLUTION" not in l]
        _cell(nb, gid).source = "\n".join(lines)
    return nb


def with_extra_cell(nb, source: str):
    nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def outcome(result: dict) -> tuple:
    """(status, score) of one student's ``autograde --json`` result."""
    return result["status"], result["score"]


def problems(result: dict) -> str:
    """The problems autograde lists for one student (the last column of the TA's table)."""
    return "; ".join(result["problems"])


def record(course: Path, student: str) -> dict:
    return json.loads((course / "autograded" / ".records" / ASSIGNMENT / f"{student}.json").read_text())


def hints(course: Path, student: str, function: str) -> list[str]:
    """Every check's hint ('' when it passed) of one function's grade cells, from the record."""
    rec = record(course, student)
    return [check.get("hint") or "" for gid, cell in rec["cells"].items() if gid.startswith(f"test_{function}")
            for check in cell["checks"]]


def all_text(folder: Path) -> str:
    """Everything under ``folder`` as text (links not followed), to search for leaked content."""
    out = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out.append(path.read_text(errors="replace"))
    return "\n".join(out)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    course = base / "course"
    shutil.copytree(FIXTURE / "course" / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    r = cli(course, "generate", ASSIGNMENT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    solution_nb = course / "solutions" / ASSIGNMENT / NOTEBOOK
    suite_py = FIXTURE / "suites" / "hw_fixture.py"
    assert SOLUTION_MARK in solution_nb.read_text() and SUITE_MARK in suite_py.read_text()

    # linky: hand-made inbound folders (the exchange's inbound is writable by every student)
    exchange = base / "exchange"
    inbound = exchange / COURSE_ID / "inbound"
    inbound.mkdir(parents=True)
    os.chmod(exchange, 0o1777)
    real = inbound / f"linky+{ASSIGNMENT}+2026-01-10 10:00:00.000000 UTC+a1b2c3"
    real.mkdir()
    (real / "timestamp.txt").write_text("2026-01-10 10:00:00.000000 UTC")
    nbformat.write(with_extra_cell(released(course), PEEK), real / NOTEBOOK)
    os.symlink(solution_nb, real / "answers.txt")
    os.symlink(suite_py, real / "suite.py")
    os.mkfifo(real / "pipe")
    os.symlink(course / "solutions" / ASSIGNMENT, inbound / f"linky+{ASSIGNMENT}+2026-01-11 10:00:00.000000 UTC+d4e5f6")
    r = cli(course, "--exchange", str(exchange), "collect", ASSIGNMENT)
    collect_log = r.stdout + r.stderr
    assert r.returncode == 0, collect_log[-3000:]

    def submit(student: str, nb) -> Path:
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / NOTEBOOK)
        return folder

    submit("ann", released(course))
    sneaky = submit("sneaky", with_extra_cell(released(course), PEEK))
    os.symlink(solution_nb, sneaky / "answers.txt")
    os.symlink(suite_py, sneaky / "suite.py")
    nblink = course / "submitted" / "nblink" / ASSIGNMENT
    nblink.mkdir(parents=True)
    os.symlink(solution_nb, nblink / NOTEBOOK)
    hog = with_extra_cell(released(course), FILL + "_fill('in-my-folder')\nprint('the kernel wrote', 2, 'GiB')")
    _cell(hog, "scaled_add").source = FILL + (
        "def scaled_add(x, y, alpha):\n    _fill('/tmp/scratch')\n    return x + alpha * y\n")
    submit("hog", hog)
    bomb = released(course)
    _cell(bomb, "scaled_add").source = (
        "def scaled_add(x, y, alpha):\n    hoard = bytearray(64 * 2**30)\n    return x + alpha * y\n")
    submit("bomb", bomb)

    r = cli(course, "autograde", ASSIGNMENT, "--device", "cpu", "--workers", "2", "--json")
    grading = r
    f = cli(course, "feedback", ASSIGNMENT)
    assert f.returncode == 0, f.stdout[-2000:] + f.stderr[-2000:]
    return {"course": course, "collect": collect_log, "autograde": grading, "rows": autograde_results(grading)}


def feedback_html(course: Path, student: str) -> str:
    return (course / "feedback" / student / ASSIGNMENT / NOTEBOOK.replace(".ipynb", ".html")).read_text()


@pytest.mark.slow
def test_collect_copies_no_link_and_tells_the_ta_and_the_student(graded):
    course, rows = graded["course"], graded["rows"]
    submitted = course / "submitted" / "linky" / ASSIGNMENT
    assert sorted(p.name for p in submitted.iterdir()) == [NOTEBOOK, "timestamp.txt"], list(submitted.iterdir())
    assert "2026-01-10 10:00:00" in (submitted / "timestamp.txt").read_text()  # her real folder, not the link
    assert SOLUTION_MARK not in all_text(course / "submitted") and SUITE_MARK not in all_text(course / "submitted")
    # the TA sees each refused entry at collect and in autograde's summary; the rest is graded
    for name in ("answers.txt", "suite.py", "pipe"):
        assert name in graded["collect"], graded["collect"][-3000:]
        assert f"refused {name}" in problems(rows["linky"]), rows
        assert f"refused {name}" in graded["autograde"].stderr  # the TA's table (stdout: --json)
    assert outcome(rows["linky"]) == ("graded", 7), rows
    # the student's feedback says it; nothing of the targets reaches autograded/, record, feedback
    html = feedback_html(course, "linky")
    assert "not regular files" in html and "answers.txt" in html and "symbolic link" in html
    assert record(course, "linky")["refused"]
    for where in (course / "autograded", course / "feedback"):
        text = all_text(where)
        assert SOLUTION_MARK not in text and SUITE_MARK not in text


@pytest.mark.slow
def test_autograde_never_follows_a_link_in_submitted(graded):
    course, rows = graded["course"], graded["rows"]
    autograded = course / "autograded" / "sneaky" / ASSIGNMENT
    assert not (autograded / "answers.txt").exists() and not (autograded / "suite.py").exists()
    nb = nbformat.read(autograded / NOTEBOOK, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "answers.txt unreadable" in printed and "suite.py unreadable" in printed, printed[-2000:]
    assert "refused answers.txt" in problems(rows["sneaky"]) and outcome(rows["sneaky"]) == ("graded", 7), rows
    assert "answers.txt" in feedback_html(course, "sneaky")
    assert SOLUTION_MARK not in all_text(course / "feedback") + all_text(course / "autograded")
    # a notebook that is a link is not graded (it would be the instructor's, with full marks)
    assert rows["nblink"]["status"] == "failed" and "not a regular file" in problems(rows["nblink"]), rows
    assert rows["nblink"]["score"] != 7


@pytest.mark.slow
def test_scratch_space_is_bounded_in_tmp_and_in_the_working_folder(graded):
    course, rows = graded["course"], graded["rows"]
    assert outcome(rows["hog"]) == ("graded", 4) and rows["hog"]["max_score"] == 7, rows  # scaled_add's 3 points lost, no more
    # the kernel that filled its working folder was stopped with a clear reason (not a time-out)
    assert "ScratchLimitError" in problems(rows["hog"]), rows
    from autograder.engine.sandbox import SCRATCH_BYTES

    limit = f"the limit is {SCRATCH_BYTES // MiB} MiB"
    first, *rest = hints(course, "hog", "scaled_add")
    assert "wrote" in first and limit in first, first  # the hidden suite's run, writing to /tmp
    assert all("not run" in h and "scratch-space limit" in h for h in rest), rest
    assert all(not h for h in hints(course, "hog", "row_softmax"))  # only its own points are lost
    html = feedback_html(course, "hog")
    assert limit in html and "the kernel wrote 2 GiB" not in html
    assert outcome(rows["ann"]) == ("graded", 7), rows  # the rest of the class is untouched


@pytest.mark.slow
def test_a_function_that_exhausts_memory_is_not_run_for_its_other_checks(graded):
    course, rows = graded["course"], graded["rows"]
    first, *rest = hints(course, "bomb", "scaled_add")
    assert "MemoryError" in first, first
    assert rest and all("not run: an earlier call of scaled_add ran out of memory" in h for h in rest), rest
    assert outcome(rows["bomb"]) == ("graded", 4), rows
    assert outcome(rows["ann"]) == ("graded", 7), rows


def test_gpu_sandboxes_cap_host_memory_without_rlimit_as(tmp_path):
    """The GPU configuration (no RLIMIT_AS: CUDA reserves huge virtual ranges) on this CPU machine:
    RLIMIT_DATA refuses a 12 GiB private mapping and a 12 GiB torch tensor (neither is touched,
    so without the cap they cost nothing here)."""
    from autograder.engine.sandbox import default_sandbox

    sandbox = default_sandbox("cuda")
    assert sandbox.gpu and sandbox.limits.memory_bytes is None
    probe = ("import mmap, torch\n"
             "for what, make in [('mmap', lambda: mmap.mmap(-1, 12 * 2**30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)),\n"
             "                   ('tensor', lambda: torch.empty(12 * 2**30, dtype=torch.uint8))]:\n"
             "    try:\n        make(); print(what, 'allocated')\n"
             "    except (OSError, MemoryError, RuntimeError) as err:\n        print(what, 'refused')\n")
    out = subprocess.run(sandbox.wrap([sys.executable, "-c", probe], tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["mmap", "refused", "tensor", "refused"], out
    from autograder.engine.sandbox import HOST_MEMORY_BYTES

    assert sandbox.limits.data_bytes == HOST_MEMORY_BYTES < 12 * 2**30


WRITABLE_PROBE = """
import os
found = []
for d, dirs, files in os.walk('/'):
    if d.startswith(('/proc', '/sys')):
        dirs[:] = []
        continue
    try:
        fd = os.open(os.path.join(d, '.probe'), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        os.close(fd); os.unlink(os.path.join(d, '.probe')); found.append(d)
    except OSError:
        pass
print('\\n'.join(found))
"""


def test_every_writable_place_in_the_sandbox_is_on_disk_in_its_working_folder(tmp_path):
    """No tmpfs left writable: /tmp and /dev/shm are folders of the working folder (measured);
    nothing else (bwrap's own root and /dev) takes a byte."""
    from autograder.engine.sandbox import BwrapSandbox

    workdir = tmp_path / "work"
    workdir.mkdir()
    out = subprocess.run(BwrapSandbox().wrap([sys.executable, "-c", WRITABLE_PROBE], workdir), capture_output=True,
                         text=True, timeout=120)
    writable = set(out.stdout.split())
    outside = {d for d in writable if not (d == str(workdir) or d.startswith(f"{workdir}/"))} - {"/tmp", "/dev/shm"}
    assert {"/tmp", "/dev/shm", str(workdir)} <= writable and not outside, out
    inside = subprocess.run(BwrapSandbox().wrap(["cat", "/proc/self/mountinfo"], workdir), capture_output=True,
                            text=True, timeout=60).stdout
    tmpfs = [line.split() for line in inside.splitlines() if " - tmpfs " in line]
    assert tmpfs and all(fields[5].split(",")[0] == "ro" for fields in tmpfs), inside  # mount options


def unconfined_then_graded(source: str, function: str, folder: Path) -> tuple[list, object]:
    """``function(folder)`` of ``source`` run here, unconfined (what the machine allows), then
    ``function("/tmp/grab")`` as a graded call in the production sandbox (the hidden suite's path):
    (the unconfined result as a list, the graded call's Outcome)."""
    from autograder.checks import Call
    from autograder.engine.sandbox import BwrapSandbox
    from autograder.engine.supervisor import run_calls

    namespace: dict = {}
    exec(source, namespace)
    unconfined = namespace[function](str(folder)).tolist()
    (outcome,) = run_calls(source, [Call(function, ["/tmp/grab"], timeout=60)], sandbox=BwrapSandbox())
    return unconfined, outcome


RESERVE = """
import ctypes, errno, os
import torch


def reserve(folder, total=4 * 2**30, chunk=256 * 2**20):
    # reserve `total` bytes of disk in `folder` with fallocate(2), in files of `chunk`; returns
    # [bytes reserved, errno of the first refusal, bytes of a 1 MiB posix_fallocate,
    #  errno of io_uring_setup(2) when ENOSYS]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    libc.syscall.restype = ctypes.c_long
    os.makedirs(folder, exist_ok=True)
    got, refused = 0, 0
    for i in range(total // chunk):
        path = os.path.join(folder, f'r{i}')
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        failed = libc.fallocate(fd, 0, 0, chunk) != 0
        refused = refused or (ctypes.get_errno() if failed else 0)
        got += os.fstat(fd).st_blocks * 512
        os.close(fd)
        os.remove(path)
    fd = os.open(os.path.join(folder, 'small'), os.O_CREAT | os.O_WRONLY, 0o600)
    os.posix_fallocate(fd, 0, 2**20)  # glibc writes the blocks itself when fallocate is refused
    small = os.fstat(fd).st_blocks * 512
    os.close(fd)
    ring = errno.ENOSYS if libc.syscall(425, 8, None) == -1 and ctypes.get_errno() == errno.ENOSYS else 0
    return torch.tensor([got, refused, small, ring], dtype=torch.float64)
"""


def test_no_submission_can_reserve_disk_faster_than_it_writes(tmp_path):
    """fallocate(2) reserves GiB in milliseconds, far more than the scratch watch's every-0.2-s
    measurement could stop before the node's disk is full: in the sandbox it is refused
    (EOPNOTSUPP, so posix_fallocate falls back to writing, at the disk's speed), and so is
    io_uring, which could fallocate without the system call. Checked on a graded call (the
    hidden suite's path), after the same code, unconfined, reserved its 4 GiB on this disk."""
    import errno

    (got, refused, _, _), outcome = unconfined_then_graded(RESERVE, "reserve", tmp_path)
    assert got >= 4 * 2**30 and refused == 0, "the test needs a file system where fallocate reserves blocks"
    assert outcome.ok, outcome.error
    got, refused, small, ring = outcome.output["tensor"].tolist()
    assert (got, refused) == (0, errno.EOPNOTSUPP), outcome.output
    assert small == 2**20  # programs that reserve with posix_fallocate still work
    assert ring == errno.ENOSYS


RESERVE_I386 = """
import ctypes, mmap, os, struct
import torch


def reserve_i386(folder, size=64 * 2**20):
    # fallocate through the 32-bit system-call gate (int 0x80: another ABI, another number, 324),
    # the way around a filter that only knows x86_64's numbers; returns [result, bytes reserved]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, 'r32')
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    code = (b'\\x53\\x55'                                       # push rbx; push rbp
            + b'\\xb8' + struct.pack('<I', 324)                 # mov eax, 324 (i386 fallocate)
            + b'\\xbb' + struct.pack('<I', fd)                  # mov ebx, fd
            + b'\\x31\\xc9\\x31\\xd2\\x31\\xf6'                 # mode = 0, offset = 0 (low, high)
            + b'\\xbf' + struct.pack('<I', size) + b'\\x31\\xed'  # length (low, high)
            + b'\\xcd\\x80\\x5d\\x5b\\xc3')                     # int 0x80; pop rbp; pop rbx; ret
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    result = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()
    got = os.fstat(fd).st_blocks * 512
    os.close(fd)
    os.remove(path)
    return torch.tensor([result, got], dtype=torch.float64)
"""


def test_the_32_bit_system_call_gate_cannot_reserve_disk_either(tmp_path):
    """x86_64 Linux also runs i386 system calls (int 0x80), where fallocate has another number:
    the filter refuses it there too (unconfined, the same code reserves its 64 MiB on this machine)."""
    import errno
    import platform

    assert platform.machine() == "x86_64", "this test's machine code is x86_64"
    (result, got), outcome = unconfined_then_graded(RESERVE_I386, "reserve_i386", tmp_path)
    assert result == 0 and got >= 64 * 2**20, "the test needs i386 emulation and a file system with fallocate"
    assert outcome.ok, outcome.error
    assert outcome.output["tensor"].tolist() == [-errno.EOPNOTSUPP, 0]


def test_copy_regular_files_refuses_every_kind_of_special_entry(tmp_path):
    from autograder.exchange import copy_regular_files

    src, secret = tmp_path / "src", tmp_path / "secret.txt"
    (src / "sub").mkdir(parents=True)
    secret.write_text("SECRET")
    (src / "notes.txt").write_text("mine")
    (src / "sub" / "data.csv").write_text("1,2")
    os.symlink(secret, src / "answers.txt")
    os.symlink(tmp_path, src / "folder-link")
    os.mkfifo(src / "pipe")
    os.link(secret, src / "hard.txt")
    refused = copy_regular_files(src, tmp_path / "dest", owner_uid=os.getuid() + 1)
    copied = sorted(str(p.relative_to(tmp_path / "dest")) for p in (tmp_path / "dest").rglob("*"))
    assert copied == ["notes.txt", "sub", "sub/data.csv"]
    kinds = {line.split(":")[0]: line for line in refused}
    assert set(kinds) == {"answers.txt", "folder-link", "pipe", "hard.txt"}
    assert "symbolic link" in kinds["answers.txt"] and "FIFO" in kinds["pipe"] and "hard link" in kinds["hard.txt"]
    assert "SECRET" not in all_text(tmp_path / "dest")
    os.symlink(src, tmp_path / "linked-src")  # the folder itself a link: nothing copied
    lines = copy_regular_files(tmp_path / "linked-src", tmp_path / "dest2")
    assert len(lines) == 1 and "itself is a symbolic link" in lines[0] and not (tmp_path / "dest2").exists()


def test_the_readme_threat_model_states_the_limits_in_force():
    """The README's numbers are the constants' (one source: autograder/engine/sandbox.py)."""
    from autograder.engine.sandbox import HOST_MEMORY_BYTES, SCRATCH_BYTES, SCRATCH_FILES, SCRATCH_POLL_S

    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Threat model", 1)[1].split("\n## ", 1)[0]
    for stated in (f"**{SCRATCH_BYTES // MiB} MiB**", f"the limit is {SCRATCH_BYTES // MiB} MiB", f"**{SCRATCH_FILES}**",
                   f"**{HOST_MEMORY_BYTES // 2**30} GiB**", f"every {SCRATCH_POLL_S:g} s"):
        assert stated in section, f"README's threat model should state {stated!r}"


def test_an_assignment_sets_its_own_limits_in_its_public_spec(monkeypatch):
    """``SCRATCH_BYTES`` / ``HOST_MEMORY_BYTES`` in ``lec4.homework.<assignment>`` replace the
    defaults for that assignment's sandboxes (kernel and hidden suite); others keep the defaults."""
    import types

    from autograder.engine.sandbox import HOST_MEMORY_BYTES, SCRATCH_BYTES, default_sandbox

    spec = types.ModuleType("lec4.homework.hw_tiny")
    spec.SCRATCH_BYTES, spec.HOST_MEMORY_BYTES = 32 * MiB, 2 * 2**30
    monkeypatch.setitem(sys.modules, "lec4.homework.hw_tiny", spec)
    cpu, gpu = default_sandbox("cpu", "hw-tiny"), default_sandbox("cuda", "hw-tiny")
    assert cpu.limits.scratch_bytes == gpu.limits.scratch_bytes == 32 * MiB
    assert cpu.limits.memory_bytes == cpu.limits.data_bytes == gpu.limits.data_bytes == 2 * 2**30
    assert gpu.limits.memory_bytes is None
    assert f"--fsize={32 * MiB}" in cpu.limits.prlimit_args() and f"--data={2 * 2**30}" in gpu.limits.prlimit_args()
    other = default_sandbox("cpu", "hw-attention").limits  # its spec sets neither
    assert (other.scratch_bytes, other.data_bytes) == (SCRATCH_BYTES, HOST_MEMORY_BYTES)


def test_the_system_call_filter_names_an_architecture_it_does_not_know():
    """A grading node of another architecture gets a clear error, never an unfiltered sandbox."""
    from autograder.engine import syscall_filter

    assert len(syscall_filter.program("aarch64")) % 8 == 0  # whole struct sock_filter instructions
    with pytest.raises(RuntimeError, match=r"knows x86_64, aarch64, not 'riscv64'.*ARCHES"):
        syscall_filter.program("riscv64")
    r = subprocess.run([sys.executable, "-S", "-I", syscall_filter.__file__], capture_output=True, text=True)
    assert r.returncode != 0 and "usage:" in r.stderr, r


def test_another_user_of_the_machine_cannot_list_a_grading_in_progress(tmp_path):
    """Where the hub and the grading share a machine, a student's server sees /tmp/grade-*:
    while a submission is graded its folder must not be listable by another user, or they would
    find job-*/job.pt (that submission's source and the hidden calls' inputs) and its HOME."""
    import torch

    from autograder.engine.sandbox import BwrapSandbox
    from autograder.engine.supervisor import SandboxLauncher

    assert os.geteuid() == 0, "needs root: the other user is made with setpriv"
    launcher = SandboxLauncher(BwrapSandbox())
    try:
        job, _ = launcher.new_job()
        torch.save({"source": "def secret(): pass", "calls": []}, job / "job.pt")
        launcher.prestart()  # the sandbox's reaper gives HOME to the graded code's user
        other = ["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "--"]
        for folder in (launcher.workdir, launcher.home):
            probe = subprocess.run([*other, "ls", str(folder)], capture_output=True, text=True)
            assert probe.returncode != 0 and "Permission denied" in probe.stderr, (folder, probe.stdout, probe.stderr)
        # the graded code still reaches both (the sandboxes of every other test run through them)
        assert (job / "job.pt").exists() and launcher.home.is_dir()
    finally:
        launcher.close()
