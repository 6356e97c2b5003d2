"""Grading options from the process environment: the one module of ``autograder`` that reads (or
sets) the environment.

``python -m autograder`` takes its settings as command-line flags and hands them to nbgrader and
its grading workers as traitlets options, applied after ``nbgrader_config.py``, so they win.
That file (through :func:`autograder.nbgrader_hooks.pipeline.configure`) fills the same options
from the ``AUTOGRADER_*`` variables of :data:`VARIABLES` -- for a TA's plain ``nbgrader``, for the
Slurm scripts, and for every grading worker, where a flag not given leaves them in force -- and
the defaults written here come last. So: flags, then these variables, then the defaults.

Each variable is named once below, with its type and default, and the README's table of
variables is checked against :data:`VARIABLES` (``tests/test_options.py``). A value that does not
parse is an :class:`OptionError` naming the variable and what was expected; an empty value counts
as unset (as in the Slurm scripts' ``[ -n ... ]``). Values are read when asked for
(:func:`current`), never at import, so a changed environment is seen.

The few other variables the grader looks at (``CUDA_VISIBLE_DEVICES``, ``USER``, ``SUDO_USER``)
and the environments of the processes it starts (:func:`child_env`) go through here too.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

# The notebook run's default time limits (SandboxedExecute), the one place they are written
# (re-exported by autograder.nbgrader_hooks): --cell-timeout / --notebook-timeout and
# AUTOGRADER_CELL_TIMEOUT / AUTOGRADER_NOTEBOOK_TIMEOUT override them.
CELL_TIMEOUT_S = 60  # seconds per cell
NOTEBOOK_TIMEOUT_S = 600  # wall-clock seconds for the whole notebook
# A hidden call's default time limit (autograder.checks.Call.timeout): --call-timeout and
# AUTOGRADER_CALL_TIMEOUT set every hidden call's limit instead.
CALL_TIMEOUT_S = 60  # seconds per call of a graded function


class OptionError(ValueError):
    """An ``AUTOGRADER_*`` variable whose value does not parse."""


def seconds(text: str) -> int:
    """A time limit's text as whole seconds, at least 1 (ValueError otherwise): the rule of the
    timeout variables and of the CLI's timeout flags."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError("expected a number of seconds (a whole number, at least 1)")
    return value


def _device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise ValueError("expected cpu, cuda or cuda:N")
    return text


def _folders(text: str) -> tuple[Path, ...]:
    return tuple(Path(folder) for folder in text.split(os.pathsep) if folder)


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the :class:`Options` field it sets, how its text is
    parsed, its default (when unset or empty) and what it is for (the README's table says it too)."""

    name: str
    field: str
    parse: Callable[[str], object]
    default: Callable[[], object]
    help: str


VARIABLES: tuple[Variable, ...] = (
    Variable("AUTOGRADER_DB_URL", "db_url", str, lambda: None,
             "gradebook URL (e.g. PostgreSQL for several TAs or Slurm); default nbgrader's SQLite gradebook.db"),
    Variable("AUTOGRADER_COURSE_ROOT", "course_root", str, lambda: None,
             "course folder (solutions/, submitted/, autograded/); default the repository"),
    Variable("AUTOGRADER_CELL_TIMEOUT", "cell_timeout", seconds, lambda: CELL_TIMEOUT_S,
             "seconds per notebook cell"),
    Variable("AUTOGRADER_NOTEBOOK_TIMEOUT", "notebook_timeout", seconds, lambda: NOTEBOOK_TIMEOUT_S,
             "wall-clock seconds for the whole notebook"),
    Variable("AUTOGRADER_CALL_TIMEOUT", "call_timeout", seconds, lambda: None,
             f"seconds per hidden call of a graded function; default each call's own ({CALL_TIMEOUT_S} s unless the suite says)"),
    Variable("AUTOGRADER_DEVICE", "device", _device, lambda: "",
             "cpu or cuda; default cuda when torch sees a GPU, else cpu"),
    Variable("AUTOGRADER_SUITE_PATH", "suite_path", _folders, tuple,
             "folders searched first for an assignment's hidden suite (os.pathsep-separated)"),
    Variable("AUTOGRADER_SCRATCH", "scratch", Path, lambda: Path(tempfile.gettempdir()),
             "where sandboxed kernels get their working folders; default the system's temporary folder"),
)


@dataclass(frozen=True)
class Options:
    """The grading options the environment sets (see :data:`VARIABLES`), defaults filled in."""

    db_url: str | None
    course_root: str | None
    cell_timeout: int
    notebook_timeout: int
    call_timeout: int | None  # None: each hidden call's own limit
    device: str  # "" = cuda when torch sees a GPU, else cpu
    suite_path: tuple[Path, ...]
    scratch: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "Options":
        """The options of ``environ`` (default: this process's environment); OptionError for a bad value."""
        environ = os.environ if environ is None else environ
        values = {}
        for variable in VARIABLES:
            text = environ.get(variable.name, "")
            if not text:
                values[variable.field] = variable.default()
                continue
            try:
                values[variable.field] = variable.parse(text)
            except ValueError as err:
                raise OptionError(f"{variable.name}={text!r}: {err}") from None
        return cls(**values)


def current() -> Options:
    """This process's options, read now."""
    return Options.from_environment()


# Variables that are not the grader's own options, read where the grader reports or passes them on.

def cuda_visible_devices() -> str | None:
    """``CUDA_VISIBLE_DEVICES`` as inherited (None when unset): the GPUs this process may use."""
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def user(default: str) -> str:
    """``USER``, or ``default`` when unset."""
    return os.environ.get("USER", default)


def sudo_user() -> str | None:
    """``SUDO_USER``: who ran this with sudo (None when not run with sudo)."""
    return os.environ.get("SUDO_USER")


def child_env(*overrides: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment for a process the grader starts: this process's, then ``overrides`` in
    order, then ``extra`` (later wins)."""
    env = dict(os.environ)
    for override in overrides:
        env.update(override)
    env.update(extra)
    return env


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # torch's intra-op threads (OpenMP, MKL)


def grading_threads(workers: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The thread counts for the sandboxes of one of ``workers`` gradings running side by side:
    this process's CPUs (its affinity: a Slurm task's own) shared out, at least 1 each; a count
    the environment already sets (``grade_array.sbatch``: the task's CPUs) is kept. More threads
    than CPUs make OpenMP's waiting threads spin: on 2 busy cores a chapter that runs in 55 s
    single-threaded took over 16 minutes of CPU with 2 threads."""
    environ = os.environ if environ is None else environ
    share = str(max(1, len(os.sched_getaffinity(0)) // max(1, workers)))
    return {name: environ.get(name) or share for name in THREAD_VARIABLES}


def path_with_python_bin() -> str:
    """``PATH`` with this Python's own bin folder first (nbgrader runs ``alembic`` from ``PATH``)."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def put_python_bin_on_path() -> None:
    """Put this Python's bin folder first on this process's ``PATH``, for nbgrader run in-process."""
    os.environ["PATH"] = path_with_python_bin()
