"""Which known mistake a failing submission most likely made: the catalog's signatures.

Every entry of an assignment's catalog of faulty implementations (``autograder/catalog/<assignment>/``,
see :mod:`autograder.selfcheck`) fails a definite set of hidden checks when it is graded. That set,
its **signature**, is measured, never written by hand: ``python -m autograder selfcheck ASSIGNMENT
--device cpu --signatures autograder/catalog/<assignment>/signatures.json`` grades every entry in
the production sandbox and writes them (``tests/test_autograder_selfcheck.py`` checks that the
committed file equals what the self-check measures).

:func:`likely_mistakes` is the one matching rule, used by the class report
(:mod:`autograder.report`) and by the student's feedback (:mod:`autograder.nbgrader_hooks`):
an entry matches when the student fails exactly the entry's checks *on the grade cells the entry's
solution cell can affect* (its scope: the cells of the function it breaks and of the functions
that call it, :func:`autograder.selfcheck.affected_cells`), whatever else they fail elsewhere (a
second mistake in another function does not hide the first). Two entries that fail the same
checks (e.g. two ways to get the scale wrong) both match: the report and the feedback name both.
A function that uses a forbidden call fails every check of that function (:mod:`autograder.engine.grading`),
as a blank answer does; what tells them apart is the reason, so a signature also holds the forbidden
names the entry's code uses in each function of its scope (:func:`forbidden_in`, THE rule of
:func:`autograder.checks.forbidden_calls`, on the graded source the record keeps): an entry matches only
a student whose code uses exactly those names there (none, for an entry that uses none). A caller
without the graded source passes ``source=None``: then entries that use forbidden names are not
matched (the failed checks' hints already name the forbidden calls). An entry whose failures are
those of a blank answer (every check of its scope, no forbidden name) would not be identifiable: it
is marked ``"identifiable": false`` and never matched; the hidden suites have checks fine enough
that no entry is in that state today (tests/test_report.py). Entries that fail the same checks and
use the same names are the same observable mistake for the suite: both are named (e.g.
``gqa_missing_scale`` and ``gqa_scale_by_d``: only the size of the scale differs, and every check
whose scores depend on the scale fails both). The description shown is the entry's one-line
docstring; neither the signature's check names beyond what the student already sees nor any hidden
input is revealed.

A check is named ``"<grade_id>: <check name>"`` (:func:`check_id`), as in the grade records.
Signatures are measured on the CPU; a check that only exists on one device (e.g. a CUDA
device check) can make a GPU-graded student match no entry rather than a wrong one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CATALOG_ROOT = Path(__file__).resolve().parent / "catalog"
SIGNATURES = "signatures.json"


@dataclass(frozen=True)
class CatalogMatch:
    """A catalog entry whose signature the student's failures match."""

    name: str          # the entry's file stem, e.g. "rope_half_split"
    description: str   # the first line of its docstring: what the mistake is
    breaks: str        # the solution cell (grade_id) it replaces
    checks: frozenset  # its signature: the check ids it fails
    scope: frozenset   # the grade cells it can affect
    forbidden: frozenset = frozenset()  # its signature too: (function, forbidden name) it uses in its scope


def check_id(grade_id: str, name: str) -> str:
    """The name of one hidden check across cells: ``"<grade_id>: <check name>"``."""
    return f"{grade_id}: {name}"


def failed_checks(record: dict) -> set[str]:
    """The check ids a grade record (:mod:`autograder.records`) fails."""
    return {check_id(gid, c["name"]) for gid, cell in record["cells"].items() for c in cell["checks"]
            if not c["passed"]}


def _cell(check: str) -> str:
    return check.split(": ", 1)[0]


def signatures_path(assignment: str) -> Path:
    return CATALOG_ROOT / assignment.replace("-", "_") / SIGNATURES


@lru_cache(maxsize=None)
def catalog_signatures(assignment: str) -> tuple[CatalogMatch, ...]:
    """Every catalog entry of ``assignment`` with its measured signature; () when the assignment
    has no signatures file (then nothing is ever matched). A malformed file is an error."""
    path = signatures_path(assignment)
    if not path.exists():
        return ()
    try:
        data = json.loads(path.read_text())
        entries = data["entries"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a signatures file ({err}); regenerate it with "
                         f"`python -m autograder selfcheck {assignment} --device cpu --signatures {path}`") from None
    return tuple(CatalogMatch(name, e["description"], e["breaks"], frozenset(e["fails"]), frozenset(e["scope"]),
                              frozenset((fn, n) for fn, names in e["forbidden"].items() for n in names))
                 for name, e in sorted(entries.items()) if e["fails"] and e["identifiable"])


@lru_cache(maxsize=None)
def _suite(assignment: str):
    from autograder.suites import load_suite
    return load_suite(assignment)


def forbidden_in(assignment: str, source: str, cells=None) -> dict[str, list[str]]:
    """``{function: sorted forbidden names}`` that ``source`` uses, for every function of the suite's
    ``FORBIDDEN`` whose grade cells meet ``cells`` (all when None); [] for a clean function."""
    from autograder.checks import forbidden_calls

    suite = _suite(assignment)
    functions = {fn for gid, (fn, _) in suite.GRADE_CELLS.items() if cells is None or gid in cells}
    return {fn: sorted(names) for fn, names in forbidden_calls(source, suite.FORBIDDEN).items() if fn in functions}


def unidentifiable(assignment: str) -> list[str]:
    """Catalog entries that fail every check of their scope (see module doc): never matched."""
    path = signatures_path(assignment)
    if not path.exists():
        return []
    return sorted(n for n, e in json.loads(path.read_text())["entries"].items() if not e["identifiable"])


def likely_mistakes(assignment: str, failed_checks: set[str], source: str | None) -> list[CatalogMatch]:
    """The catalog entries whose signature the failures match (see module doc), most specific
    (most checks) first; [] when none does. ``failed_checks``: check ids (:func:`check_id`);
    ``source``: the graded code (a record's ``source``), or None when unknown (then entries that
    use forbidden names never match)."""
    failed = set(failed_checks)
    uses = forbidden_in(assignment, source) if source is not None else None
    found = []
    for entry in catalog_signatures(assignment):  # the same checks failed, the same forbidden names used
        if {c for c in failed if _cell(c) in entry.scope} != entry.checks:
            continue
        functions = {fn for gid, (fn, _) in _suite(assignment).GRADE_CELLS.items() if gid in entry.scope}
        if uses is None:
            if entry.forbidden:
                continue
        elif {(fn, n) for fn, names in uses.items() if fn in functions for n in names} != entry.forbidden:
            continue
        found.append(entry)
    # an entry whose scope is strictly inside another match's explains less of the same failures
    # (a wrong conv2d_backward also breaks the wiring cells: the wiring entry alone is not the cause)
    found = [e for e in found if not any(e.scope < other.scope for other in found)]
    return sorted(found, key=lambda e: (-len(e.checks), e.name))


def measured_signatures(assignment: str, rows, entries) -> dict:
    """The signatures file's content from a self-check's rows (:func:`autograder.selfcheck.run_selfcheck`)
    and the catalog's entries (:func:`autograder.selfcheck.load_catalog`)."""
    from autograder.selfcheck import entry_scopes

    scopes = entry_scopes(assignment, entries)
    reference = next(row for row in rows if row.entry == "reference")  # it runs every check
    every = {check_id(gid, r.name) for gid, cell in reference.cells.items() for r in cell.results}
    by_name = {row.entry: row for row in rows}
    missing = [e.name for e in entries if e.name not in by_name]
    if missing:
        raise ValueError(f"the self-check did not grade {missing}: run it on the whole catalog to write signatures")

    def signature(e):
        fails = {check_id(gid, name) for gid, name, _ in by_name[e.name].failed}
        forbidden = forbidden_in(assignment, by_name[e.name].source, set(scopes[e.name]))
        blank_like = fails == {c for c in every if _cell(c) in scopes[e.name]} and not any(forbidden.values())
        return {"breaks": e.breaks, "description": e.doc.strip().splitlines()[0], "fails": sorted(fails),
                "forbidden": {fn: names for fn, names in sorted(forbidden.items()) if names},
                "scope": scopes[e.name], "identifiable": not blank_like}
    return {
        "assignment": assignment,
        "how": f"measured by `python -m autograder selfcheck {assignment} --device cpu --signatures FILE`; "
               "do not edit by hand",
        "entries": {e.name: signature(e) for e in entries},
    }


def write_signatures(path: Path, content: dict) -> None:
    Path(path).write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
