"""The CPU self-check of each assignment, graded once per test run and shared by the test files
that need it (tests/test_autograder_selfcheck.py, tests/test_report.py): under pytest-xdist the
first worker grades under a file lock in the run's common temp folder, the others read its rows.

``LEC4_SELFCHECK_ROWS=DIR`` keeps the rows in DIR instead, across runs (for iterating on a test
that reads them; CI never sets it, so it always grades afresh)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path


def shared_folder(tmp_path_factory) -> Path:
    """The temp folder common to every worker of this test run."""
    if os.environ.get("LEC4_SELFCHECK_ROWS"):
        folder = Path(os.environ["LEC4_SELFCHECK_ROWS"])
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def rows(assignment: str, shared: Path) -> list:
    """``selfcheck.run_selfcheck(assignment, "cpu", workers=2)``, graded once per run."""
    from filelock import FileLock

    from autograder import selfcheck

    with FileLock(str(shared / f"selfcheck-{assignment}.lock")):
        cache = shared / f"selfcheck-{assignment}.pickle"
        if cache.exists():
            return pickle.loads(cache.read_bytes())
        found = selfcheck.run_selfcheck(assignment, "cpu", workers=2)
        cache.write_bytes(pickle.dumps(found))
        return found
