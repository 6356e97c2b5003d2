"""Runs a submission's functions on given inputs and saves what they return.

This module is the only grading code that runs *inside* the sandbox, next to the
student's code. It decides nothing: it loads the job, executes the submission's
source, makes the requested calls and writes every outcome to disk. The student's
code can tamper with this process as it likes; all verdicts are computed outside,
by :mod:`autograder.engine.grading`, from the saved outputs.

Usage: python -m autograder.engine.runner JOB_DIR [OUT_DIR]
Reads JOB_DIR/job.pt, writes OUT_DIR/loaded (:data:`~autograder.engine.marker.LOADED`) once
the submission's code has run and OUT_DIR/outcome-<i>.pt for each call i of the job (OUT_DIR
defaults to JOB_DIR). Which calls a job holds (none after a hang of their function) is the
grader's decision (:mod:`autograder.engine.supervisor`). In the sandbox, :mod:`autograder.engine.reaper` calls
:func:`main` in a forked child instead.

The submission's source is its cells joined, each headed by :func:`autograder.engine.marker.cell_marker` (written by
:func:`autograder.notebook.submission_source`); the runner executes it cell by cell.
"""
from __future__ import annotations

import re
import sys
import time
import traceback
import types
from pathlib import Path

import torch

from autograder.engine.marker import CELL_MARK, LOADED


# What an outcome's error says when the call ran out of memory (RLIMIT_AS/RLIMIT_DATA on the host,
# the GPU's memory): Python's MemoryError, torch's CPU allocator ("can't allocate memory ... Error
# code 12 (Cannot allocate memory)"), CUDA's OutOfMemoryError ("CUDA out of memory").
MEMORY_ERROR = re.compile(r"MemoryError|can't allocate memory|Cannot allocate memory|out of memory", re.I)


def exhausted_memory(error: str | None) -> bool:
    """Whether a call's error (the text of :func:`run_call`'s outcome) is memory exhaustion."""
    return bool(error) and bool(MEMORY_ERROR.search(error))


def not_run_after_memory(function: str) -> str:
    """The error of the calls of ``function`` after one of them ran out of memory: they are not
    run (each would exhaust it again, seconds to minutes apiece; see the supervisor's rule)."""
    return f"not run: an earlier call of {function} ran out of memory"


def _describe(value):
    """A weights_only-loadable description of a returned value."""
    if isinstance(value, torch.Tensor):
        info = {"kind": "tensor", "shape": list(value.shape), "dtype": str(value.dtype),
                "device": str(value.device), "requires_grad": bool(value.requires_grad)}
        if value.device.type != "meta":
            info["tensor"] = value.detach().to("cpu", copy=True).contiguous()
        return info
    if isinstance(value, (tuple, list)):
        return {"kind": type(value).__name__, "items": [_describe(v) for v in value]}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return {"kind": "scalar", "value": value}
    return {"kind": "other", "type": type(value).__name__}


def _to_device(value, device):
    if isinstance(value, torch.Tensor):
        # a fresh copy per call: a function that writes into its inputs must not corrupt later calls
        return value.detach().clone().to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def _short_error(err: BaseException) -> str:
    last = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" (line {last[0].lineno})" if last and last[0].filename == "<submission>" else ""
    return f"{type(err).__name__}: {str(err)[:300]}{where}"


def run_call(namespace: dict, call: dict) -> dict:
    device = torch.device(call["device"])
    args = _to_device(call["args"], device)
    kwargs = _to_device(call["kwargs"], device)
    for index in call["grad_of"]:
        args[index] = args[index].detach().requires_grad_(True)
    outcome = {"ok": False, "error": None, "output": None, "args_after": None, "grads": None,
               "seconds": None, "cuda_peak_bytes": None}
    fn = namespace.get(call["function"])
    if not callable(fn):
        errors = namespace.get("__cell_errors__") or []
        why = f" (a cell failed: {errors[0]})" if errors else ""
        outcome["error"] = f"NameError: the submission defines no function {call['function']!r}{why}"
        return outcome
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
        if call["grad_output"] is not None:
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"expected a tensor to backpropagate through, got {type(out).__name__}")
            out.backward(call["grad_output"].to(device))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            outcome["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
        outcome["seconds"] = time.perf_counter() - start
        outcome["ok"] = True
        outcome["output"] = _describe(out)
        outcome["grads"] = [_describe(args[i].grad) for i in call["grad_of"]]
    except Exception as err:  # the student's bug, reported back as text
        outcome["error"] = _short_error(err)
    outcome["args_after"] = _describe([a.detach() if isinstance(a, torch.Tensor) else a for a in args])
    return outcome


def main(job_dir: str, out_dir: str | None = None) -> None:
    job_path = Path(job_dir)
    out_path = Path(out_dir) if out_dir else job_path
    job = torch.load(job_path / "job.pt", weights_only=True)
    module = types.ModuleType("submission")
    module.__file__ = "<submission>"
    sys.modules["submission"] = module
    cell_errors = []
    # Cell by cell, like a notebook: a broken cell costs only what it defines.
    for cell in CELL_MARK.split(job["source"]):
        if not cell.strip():
            continue
        try:
            exec(compile(cell, "<submission>", "exec"), module.__dict__)
        except BaseException as err:  # SyntaxError, NameError, sys.exit(), ... in one cell, as in IPython
            cell_errors.append(_short_error(err))
    module.__dict__["__cell_errors__"] = cell_errors
    (out_path / LOADED).touch()  # the grader now times each call on its own
    exhausted: set[str] = set()  # functions that ran out of memory in this run
    for i, call in enumerate(job["calls"]):
        if call["function"] in exhausted:
            outcome = {"ok": False, "error": not_run_after_memory(call["function"])}
        else:
            outcome = run_call(module.__dict__, call)
            if not outcome["ok"] and exhausted_memory(outcome["error"]):
                exhausted.add(call["function"])
        torch.save(outcome, out_path / f"outcome-{i}.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
