"""Refuse the system calls that reserve disk space without writing it, then run a program.

Run inside the sandbox, before the graded code (:meth:`autograder.engine.sandbox.BwrapSandbox`
puts it after ``prlimit``)::

    python -S -I syscall_filter.py PROGRAM [ARG ...]

It installs a seccomp filter (inherited by every process the program starts, and impossible to
remove) and ``exec``\\ s the program. Why: the scratch-space limit is measured from outside every
``SCRATCH_POLL_S`` s, so between two measurements a run can only add what the disk can take in
that time -- unless it *reserves* blocks: ``fallocate(2)`` allocates any number of GiB in a few
milliseconds without writing them, enough to fill the node's disk (and make the gradebook's next
write fail) before the sandbox is killed. The filter answers:

- ``fallocate`` -> ``EOPNOTSUPP``, as on a file system without it: programs that use it through
  ``posix_fallocate(3)`` (Python's ``os.posix_fallocate``) still work, since glibc then writes
  the blocks itself, at the disk's speed like any other write;
- ``io_uring_setup`` -> ``ENOSYS`` (io_uring can ``fallocate`` without the system call);
- on x86_64, every x32-ABI call -> ``ENOSYS`` (another number for ``fallocate``).

Every other call is allowed. The program is classic BPF, built here from :data:`ARCHES` (no
libseccomp needed on a grading node); a machine whose architecture is not in the table gets a
clear error, not an unfiltered sandbox. Only the standard library is imported (``-S -I``: this
runs before anything the submission could have placed on a path).
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

# seccomp_data: int nr at offset 0, u32 arch at offset 4 (linux/seccomp.h)
_LD_ABS_W, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
X32_BIT = 0x40000000
IO_URING_SETUP = 425  # the same number in every ABI (Linux 5.1's unified table)

# host machine -> [(AUDIT_ARCH_* of an ABI it runs, its fallocate number, refuse x32 numbers)]
ARCHES = {
    "x86_64": [(0xC000003E, 285, True),  # x86_64
               (0x40000003, 324, False)],  # i386 (int 0x80)
    "aarch64": [(0xC00000B7, 47, False),  # aarch64
                (0x40000028, 352, False)],  # 32-bit arm
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def _refuse(nr: int, err: int) -> list[bytes]:
    """if nr == ``nr``: return -``err``."""
    return [_insn(_JEQ_K, nr, 0, 1), _insn(_RET_K, RET_ERRNO | err)]


def program(machine: str | None = None) -> bytes:
    """The filter for ``machine`` (default: this one) as packed ``struct sock_filter``\\ s."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise RuntimeError(f"the sandbox's system-call filter knows {', '.join(ARCHES)}, not {machine!r}: "
                           "add this architecture's fallocate number to ARCHES in "
                           "autograder/engine/syscall_filter.py")
    code = [_insn(_LD_ABS_W, 4)]  # A = arch
    for arch, fallocate, x32 in ARCHES[machine]:
        block = [_insn(_LD_ABS_W, 0)]  # A = nr
        if x32:
            block += [_insn(_JGE_K, X32_BIT, 0, 1), _insn(_RET_K, RET_ERRNO | errno.ENOSYS)]
        block += _refuse(fallocate, errno.EOPNOTSUPP) + _refuse(IO_URING_SETUP, errno.ENOSYS)
        block += [_insn(_RET_K, RET_ALLOW)]
        code += [_insn(_JEQ_K, arch, 0, len(block))] + block  # not this ABI: skip its block (A is still arch)
    code += [_insn(_RET_K, RET_ERRNO | errno.ENOSYS)]  # an ABI this machine does not run
    return b"".join(code)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install() -> None:
    """Install :func:`program` on this process (and everything it will start)."""
    prog = program()
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4  # prctl(2) takes unsigned longs
    fprog = _SockFprog(len(prog) // 8, prog)
    for args in ((PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                 (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0)):
        if libc.prctl(*args) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl{args[:2]} failed: {os.strerror(err)}")


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python -S -I syscall_filter.py PROGRAM [ARG ...]")
    try:
        install()
    except (OSError, RuntimeError) as err:  # never run the program unfiltered
        sys.exit(f"syscall_filter: {err}")
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
