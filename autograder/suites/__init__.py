"""One hidden-test suite per assignment (see autograder.checks for the interface).

``load_suite("hw-attention")`` imports ``autograder.suites.hw_attention``. Folders listed
in the environment variable ``AUTOGRADER_SUITE_PATH`` (``os.pathsep``-separated, read by
:mod:`autograder.options`) are searched first, for ``<assignment with _>.py`` -- used by the
tests' fixture course.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from autograder import options

REQUIRED = ("ASSIGNMENT", "NOTEBOOK", "GRADE_CELLS", "FORBIDDEN", "build_checks")


class NoSuite(ValueError):
    """:func:`load_suite` found no suite module for the assignment (a suite that is there but
    broken raises a plain ValueError)."""


def module_name(assignment: str) -> str:
    return assignment.replace("-", "_")


def assignments(course_root=None) -> list[str]:
    """The assignments of a course, sorted: the folders of ``course_root/solutions`` (default: this
    repository's) that have a suite (:func:`load_suite`). THE list of assignments, for every tool
    and test that runs "each assignment" (a folder without a suite is not one; a broken suite raises).
    Imports the suites, so it needs torch and lec4, never nbgrader."""
    from pathlib import Path

    root = Path(course_root) if course_root is not None else Path(__file__).resolve().parents[2]
    found = []
    for folder in sorted(p for p in (root / "solutions").iterdir() if p.is_dir()):
        try:
            load_suite(folder.name)
        except NoSuite:
            continue
        found.append(folder.name)
    return found


def load_suite(assignment: str) -> ModuleType:
    """The hidden-test suite of ``assignment``; ValueError naming what is missing otherwise."""
    name = module_name(assignment)
    module = None
    for folder in options.current().suite_path:
        path = folder / f"{name}.py"
        if path.exists():
            spec = importlib.util.spec_from_file_location(f"autograder_suite_{name}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            break
    if module is None:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise NoSuite(f"no grading suite for assignment {assignment!r}: expected "
                          f"autograder/suites/{name}.py") from None
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise ValueError(f"suite {module.__name__} lacks {', '.join(missing)}")
    if module.ASSIGNMENT != assignment:
        raise ValueError(f"suite {module.__name__} grades {module.ASSIGNMENT!r}, not {assignment!r}")
    return module
