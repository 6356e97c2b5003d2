"""Feedback HTML that renders its math offline.

nbgrader's ``generate_feedback`` (run by ``python -m autograder feedback`` and by Formgrader's
button alike) exports each graded notebook with its ``feedback`` template, which loads MathJax
from a CDN. The course configuration (:func:`configure`) exports with ``feedback_offline``
instead (``autograder/templates/``): nbgrader's template with the ``mathjax`` macro replaced by
MathJax 3's single-file ``tex-svg-full.js`` inlined (SVG output, so no font files either), from
the pinned ``sphinx-mathjax-offline`` package. Released feedback is one HTML file per notebook
(nbgrader copies only ``*.html``), so inlining is the only way it can carry MathJax along.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import metadata
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "feedback_offline"
MATHJAX_DISTRIBUTION = "sphinx-mathjax-offline"


@lru_cache(maxsize=None)
def mathjax_file(name: str) -> Path:
    """A file of MathJax 3 as shipped by the ``sphinx-mathjax-offline`` distribution."""
    try:
        dist = metadata.distribution(MATHJAX_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{MATHJAX_DISTRIBUTION} is not installed (pip install -r requirements.txt): "
                                "feedback needs its offline MathJax") from None
    for file in dist.files or []:
        if file.name == name and "mathjax" in file.parts:
            return Path(dist.locate_file(file))
    raise FileNotFoundError(f"{name} not found in {MATHJAX_DISTRIBUTION} {dist.version}")


def offline_mathjax(name: str) -> str:
    """Jinja filter: the JavaScript of MathJax file ``name``, safe inside a ``<script>`` element."""
    return mathjax_file(name).read_text(encoding="utf-8").replace("</script", "<\\/script")


def configure(c) -> None:
    """Make nbgrader's feedback export use :data:`TEMPLATE` (nbgrader's own templates stay searchable)."""
    import nbgrader

    nbgrader_templates = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"
    c.HTMLExporter.template_name = TEMPLATE
    c.HTMLExporter.extra_template_basedirs = [str(TEMPLATES), str(nbgrader_templates)]
    c.HTMLExporter.filters = {"offline_mathjax": "autograder.feedback.offline_mathjax"}
