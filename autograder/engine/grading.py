"""Scoring: grade one submission's code with a suite (checks built, runs supervised, verdicts judged)."""
from __future__ import annotations

import dataclasses

import torch

from autograder.checks import CellGrade, Check, CheckResult, Outcome, anchor_property_checks, forbidden_calls
from autograder.engine.supervisor import Sandbox, launcher_for, run_calls


def grade(suite, source: str, device: str | None = None, sandbox: Sandbox | None = None,
          env: dict[str, str] | None = None, launcher=None, call_timeout: float | None = None) -> dict[str, CellGrade]:
    """Grade ``source`` (the submission's code) with ``suite``; one CellGrade per grade cell.

    A function that mentions a forbidden call fails every check of that function.
    Points are partial credit: ``points * passed / checks`` for each grade cell. All runs of
    the submission share one sandbox (one trusted parent, see :class:`SandboxLauncher`);
    each run is a fresh process.

    ``launcher``: run in this open launcher (``launcher_for(sandbox, env)``, which the caller
    closes) instead of a new sandbox, for trusted code only (``selfcheck``): the submission starts
    afresh in it (:meth:`~autograder.engine.supervisor.SandboxLauncher.next_submission`).

    ``call_timeout``: every hidden call's time limit in seconds (``--call-timeout``), instead of
    each call's own (:attr:`autograder.checks.Call.timeout`).
    """
    if launcher is not None:
        launcher.next_submission()
        return _grade(suite, source, device, launcher, call_timeout)
    launcher = launcher_for(sandbox, env)
    try:
        return _grade(suite, source, device, launcher, call_timeout)
    finally:
        launcher.close()


_BUILT: dict[tuple[int, str], tuple[object, list[Check]]] = {}


def suite_checks(suite, device: str) -> list[Check]:
    """``suite.build_checks(device)``, anchored, built once per process and suite object.

    The one place where checks are anchored: every check that needs a correct result (its kind,
    :data:`autograder.checks.KINDS`) is tied to the first plain value check of its function
    (:func:`autograder.checks.anchor_property_checks`), whatever the suite; a suite returns its
    checks unanchored. A function with such a check and no plain value check to tie it to is an
    error of the suite (ValueError), never a check credited alone.

    Checks are trusted data -- inputs, references, verdict functions that only read the
    outcomes -- and building them is deterministic (seeded), so a long-lived grading worker
    (:mod:`autograder.worker`) reuses them for every submission instead of rebuilding
    (seconds of CPU each: hw-conv retrains its reference CNN). The submission's runs still
    get fresh copies of every input (:mod:`autograder.engine.runner`).
    """
    key = (id(suite), device)
    if key not in _BUILT or _BUILT[key][0] is not suite:
        _BUILT[key] = (suite, anchored_checks(suite, suite.build_checks(device)))
    return _BUILT[key][1]


def anchored_checks(suite, checks: list[Check]) -> list[Check]:
    """``checks`` with those that need a correct result anchored; ValueError if one cannot be."""
    unknown = {c.grade_id for c in checks} - set(suite.GRADE_CELLS)
    if unknown:
        raise ValueError(f"checks name grade cells the suite does not declare: {sorted(unknown)}")
    checks = anchor_property_checks(checks, suite.GRADE_CELLS)
    loose = [f"{c.name!r} ({c.kind}, {c.grade_id})" for c in checks if c.needs_correct_result and c.anchor is None]
    if loose:
        raise ValueError(f"suite {suite.ASSIGNMENT}: checks that need a correct result, but their function has no "
                         f"plain value check to anchor them: {', '.join(loose)}")
    return checks


def _limited(call, call_timeout: float | None):
    """``call`` with the time limit ``call_timeout`` (a copy: the built checks are shared), or as it is."""
    return call if call_timeout is None else dataclasses.replace(call, timeout=call_timeout)


def _grade(suite, source: str, device: str | None, launcher, call_timeout: float | None = None) -> dict[str, CellGrade]:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    launcher.prestart()  # the sandbox starts while the checks are built (or taken from the cache)
    checks = suite_checks(suite, device)  # every check names a declared grade cell (checked there)
    banned = forbidden_calls(source, suite.FORBIDDEN)

    shared = [(ci, call) for ci, check in enumerate(checks) for call in check.calls if not call.isolated]
    lone = [(ci, call) for ci, check in enumerate(checks) for call in check.calls if call.isolated]
    call_outcomes: dict[int, Outcome] = {}
    if shared:
        for (ci, call), out in zip(shared, run_calls(source, [_limited(c, call_timeout) for _, c in shared],
                                                     launcher=launcher)):
            call_outcomes[id(call)] = out
    # A banned function fails its isolated calls without a run; one that hung in the batch
    # fails them too (the supervisor's rule, kept by the shared launcher).
    function_of_cell = {gid: fn for gid, (fn, _) in suite.GRADE_CELLS.items()}
    for ci, call in lone:
        if banned.get(function_of_cell[checks[ci].grade_id]):
            call_outcomes[id(call)] = Outcome(ok=False, error="not run: the function uses forbidden calls")
        else:
            call_outcomes[id(call)] = run_calls(source, [_limited(call, call_timeout)], launcher=launcher)[0]
    per_check = [[call_outcomes[id(call)] for call in check.calls] for check in checks]

    cells = {gid: CellGrade(gid, fn, 0.0, float(pts), []) for gid, (fn, pts) in suite.GRADE_CELLS.items()}
    for ci, check in enumerate(checks):
        function = suite.GRADE_CELLS[check.grade_id][0]
        if banned.get(function):
            hint = f"{function} uses forbidden calls: {', '.join(banned[function])}"
        else:
            try:
                hint = check.verify(per_check[ci])
            except AssertionError as err:
                hint = str(err) or "wrong result"
            except Exception as err:  # outcomes of an unexpected shape (forged or broken by the submission)
                hint = f"the results could not be checked ({type(err).__name__})"
        cells[check.grade_id].results.append(CheckResult(check.grade_id, check.name, hint is None, hint, check.kind))
    for cell in cells.values():
        if cell.results:
            passed = sum(r.passed for r in cell.results)
            cell.points = round(cell.max_points * passed / len(cell.results), 2)
    return cells
