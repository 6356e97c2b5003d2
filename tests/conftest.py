"""Shared fixtures: the built book (one clean build per test session)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# `make test` runs two xdist workers on a 2-core machine: one torch thread each avoids
# oversubscription (which made small-model tests 25-40x slower).
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ["intro", "pretraining", "modern_transformers", "cnns"]
# the book's reference pages after the chapters (book/_toc.yml): notation and bibliography
BACK_MATTER = ["notation", "bibliography"]


# Each test file's seconds in the last whole run (benchmarks/suite.py writes it).
FILE_SECONDS = ROOT / "benchmarks" / "results" / "test_files.json"


def pytest_collection_modifyitems(session, config, items):
    """Longest test files first (``make test`` distributes whole files to two workers with
    ``--no-loadscope-reorder``, in this order): a long file started last would leave one worker
    idle at the end. Seconds from :data:`FILE_SECONDS`; files not in it (new ones) come after
    the measured ones, in collection order; the tests of a file keep their order."""
    import json

    seconds = json.loads(FILE_SECONDS.read_text())
    rank = {path: i for i, path in enumerate(sorted(seconds, key=lambda p: -seconds[p]))}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


# the published repository's author in test builds (no machine identity in its history)
TEST_AUTHOR = "Course Staff 10-423 <staff-10423@example.org>"


def autograde_results(result) -> dict[str, dict]:
    """{student: its result} from ``python -m autograder autograde --json``'s stdout (one JSON
    object: autograder.cli.results_json); a clear failure when stdout is not that object."""
    import json

    try:
        return {r["student"]: r for r in json.loads(result.stdout)["results"]}
    except (ValueError, KeyError, TypeError) as err:
        pytest.fail(f"autograde --json printed no results object ({err}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def staff_snapshot(dest: Path) -> Path:
    """A clone of this repository at ``dest`` whose HEAD holds the working tree's public files
    (committed or not, untracked ones included): what ``publish`` would publish once they are
    committed. On a clean checkout (CI) it is HEAD itself."""
    from autograder.publish import GENERATED_FROM, PUBLIC_PATHS, commit_tree

    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True, capture_output=True)
    paths = [*PUBLIC_PATHS, *GENERATED_FROM.values()]
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                             "--", *paths], check=True, capture_output=True, text=True).stdout.split("\0")
    for path in paths:
        target = dest / path
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    for name in filter(None, listed):
        if (ROOT / name).is_file():  # (a tracked file deleted in the working tree is not)
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    commit_tree(dest, "the working tree's public files (tests)", TEST_AUTHOR)
    return dest


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """The published repository's book, built clean (no jupyter-cache) by tools/build_book.py
    with the published ``lec4`` first on the path; returns its html folder. The one book build
    of a test run: the site the readers get, and the proof that the public repository builds
    it alone (tests/test_publish.py).

    ``python -m autograder publish`` of :func:`staff_snapshot` (the working tree's public
    files), then the build. Built once per test run: under pytest-xdist the workers share it
    through a lock in the run's common temp folder (`make test` distributes by file, so
    test_book.py, test_browser.py and test_publish.py may land on different workers).

    ``LEC4_BUILT_BOOK=book/_build/html`` tests a site already built by ``make book``
    instead (for iterating on the site; CI always builds from clean).
    """
    from filelock import FileLock

    prebuilt = os.environ.get("LEC4_BUILT_BOOK")
    if prebuilt:
        html = Path(prebuilt).resolve()
        if not (html / "index.html").exists():
            pytest.fail(f"LEC4_BUILT_BOOK={prebuilt}: no index.html there; run `make book` first")
        return html

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # common to all workers of this run
    public = shared / "site" / "lecture4-public"
    html = public / "book" / "_build" / "html"
    with FileLock(str(shared / "site.lock")):
        failure = shared / "site" / "FAILED"
        if failure.exists():
            pytest.fail(failure.read_text())
        if not (html / "index.html").exists():
            from autograder.publish import publish

            publish(public, staff_snapshot(shared / "site" / "staff"), TEST_AUTHOR)
            env = {**os.environ, "PYTHONPATH": str(public / "src")}
            env.pop("PYTEST_CURRENT_TEST", None)
            result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_book.py"), str(public / "book")],
                                    capture_output=True, text=True, env=env)
            if result.returncode != 0:
                message = f"book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
                failure.write_text(message)
                pytest.fail(message)
    return html
