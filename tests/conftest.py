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


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build a copy of book/ from a clean _build (no jupyter-cache) and return its html folder.

    Built once per test run: under pytest-xdist the workers share one build through a lock
    in the run's common temp folder (`make test` distributes by file, so test_book.py and
    test_browser.py may land on different workers).

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
    book = shared / "site" / "book"
    with FileLock(str(shared / "site.lock")):
        failure = shared / "site" / "FAILED"
        if failure.exists():
            pytest.fail(failure.read_text())
        if not (book / "_build" / "html" / "index.html").exists():
            shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build"),
                            dirs_exist_ok=True)
            result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_book.py"), str(book)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                message = f"book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
                failure.write_text(message)
                pytest.fail(message)
    return book / "_build" / "html"
