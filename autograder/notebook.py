"""The code of a submission that grading runs: built from the *source* notebook's layout.

For each code cell of the instructor's notebook, in order:

- a solution cell (``nbgrader.solution``) contributes the student's version, found by
  its ``grade_id`` in the submitted notebook (nothing if the cell is missing);
- a locked, non-graded cell (imports, given helpers) contributes the instructor's source;
- graded test cells and everything else the student added are left out.

So neither edited metadata nor extra cells in a submission change what gets graded.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from autograder.engine.marker import cell_marker  # the cell separator the runner splits on

try:
    import nbformat
except ImportError:  # a grading node without Jupyter (``python -m autograder selfcheck``): plain JSON
    nbformat = None

SOLUTION_REGION = re.compile(r"^[ \t]*### BEGIN SOLUTION.*?^[ \t]*### END SOLUTION[^\n]*\n?", re.S | re.M)
HIDDEN_REGION = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)


class NotebookError(ValueError):
    """A submitted notebook that cannot be graded, with the reason for the student."""


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


class _Node(dict):
    """A JSON object with attribute access, like nbformat's NotebookNode."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


def _from_json(value):
    """A notebook's JSON as nested _Nodes, multi-line sources joined (what nbformat.read gives)."""
    if isinstance(value, dict):
        return _Node({k: "".join(v) if k == "source" and isinstance(v, list) else _from_json(v)
                      for k, v in value.items()})
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def read_notebook(path):
    """The notebook at ``path`` (or ``path`` itself when it already is a notebook), as an
    nbformat v4 NotebookNode (or, without nbformat, the same structure from plain JSON)."""
    if isinstance(path, dict):
        return path
    path = Path(path)
    if not path.exists():
        raise NotebookError(f"notebook {path.name} not found (was it renamed or deleted?)")
    try:
        if nbformat is None:
            nb = _from_json(json.loads(path.read_text(encoding="utf-8")))
            if nb.get("nbformat") != 4:
                raise NotebookError(f"{path.name}: nbformat {nb.get('nbformat')}, expected 4")
            return nb
        return nbformat.read(path, as_version=4)
    except NotebookError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NotebookError(f"{path.name} is not valid notebook JSON: {err}") from err
    except Exception as err:
        if nbformat is not None and isinstance(err, nbformat.reader.NotJSONError):
            raise NotebookError(f"{path.name} is not valid notebook JSON: {err}") from err
        raise NotebookError(f"{path.name} could not be read as a notebook: {type(err).__name__}: {err}") from err


def submission_source(source_nb, submitted_nb=None) -> str:
    """Python code of the submission laid out by ``source_nb`` (see module docstring).

    With ``submitted_nb=None`` the instructor's own solution cells are used, i.e. the
    reference solution's code. Both arguments may also be notebooks already read.
    """
    template = read_notebook(source_nb)
    student = {}
    if submitted_nb is not None:
        for cell in read_notebook(submitted_nb).cells:
            gid = _meta(cell).get("grade_id")
            if cell.get("cell_type") == "code" and gid and gid not in student:
                student[gid] = cell.get("source", "")
    parts = []
    for cell in template.cells:
        meta = _meta(cell)
        if cell.cell_type != "code" or meta.get("grade"):
            continue
        if meta.get("solution"):
            if submitted_nb is None:
                code = cell.source
            else:  # a deleted (or unlabelled) solution cell is an empty answer, never the instructor's
                code = student.get(meta.get("grade_id"), "# (this solution cell is missing from the submission)")
        elif meta.get("locked"):
            code = cell.source
        else:
            continue
        parts.append(f"{cell_marker(meta.get('grade_id', '?'))}\n{_strip_magics(code)}")
    return "\n\n".join(parts) + "\n"


def _strip_magics(code: str) -> str:
    """IPython magics and shell escapes are not Python; comment them out."""
    return "\n".join(f"# {line}" if line.lstrip().startswith(("%", "!")) else line
                     for line in code.splitlines())


def check_submission(source_nb, submitted_nb):
    """The submitted notebook, or NotebookError saying why it cannot be graded.

    Besides unreadable files, a notebook that shares none of the source's solution cells
    (``grade_id``) is taken to belong to another assignment.
    """
    template, submitted = read_notebook(source_nb), read_notebook(submitted_nb)
    wanted = {_meta(c).get("grade_id") for c in template.cells if _meta(c).get("solution")}
    present = {_meta(c).get("grade_id") for c in submitted.get("cells", [])} - {None}
    if wanted and not wanted & present:
        raise NotebookError(f"{Path(str(submitted_nb)).name} has none of this assignment's solution cells "
                            f"({', '.join(sorted(wanted))}): is it the notebook of another assignment?")
    return submitted
