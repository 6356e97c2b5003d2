"""Shared fixtures: the built book (one clean build per test session)."""
from __future__ import annotations

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


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build a copy of book/ from a clean _build (no jupyter-cache) and return its html folder.

    Tests using it belong to xdist group "book", so one worker builds it once.
    """
    book = tmp_path_factory.mktemp("site") / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "_mathjax"))
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_book.py"), str(book)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return book / "_build" / "html"
