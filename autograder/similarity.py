"""``python -m autograder similarity ASSIGNMENT [--out DIR] [--json]``: suspiciously similar submissions.

Built on copydetect (winnowed k-gram fingerprints of the token stream, the MOSS algorithm; names
replaced by placeholders, comments and whitespace dropped), run on the graded code of the grade
records (``record["source"]``) only:

- per submission and per graded function (the assignment's graded functions that its release
  notebook leaves to the student), the function's own code plus the top-level helpers it
  calls that the student wrote, helpers sorted by name (so reordering them changes nothing);
- **boilerplate never counts**: fingerprints of the release notebook's code (starter stubs,
  given cells) and of the public ``lec4`` library are removed before comparing;
- a pair's score is the share of both sides' fingerprinted code that the other side has too,
  over all graded functions together (1.0: the same code up to names, comments and layout);
  pairs at or above :data:`THRESHOLD`, or with one graded function at or above
  :data:`FUNCTION_THRESHOLD`, are flagged. copydetect's exact comparison runs only for pairs whose
  shared fingerprints reach :data:`CANDIDATE` of a threshold (the rest cannot come close), which
  keeps a class of 400 (80,000 pairs) fast.

The threshold was chosen on ``tests/fixtures/similarity/`` (four independently written correct
implementations of every graded function: none may be flagged) and disguised copies (renamed
variables, reordered helpers, new comments and whitespace: all must be); ``tests/test_similarity.py``
holds both sides, ``benchmarks/similarity.py`` the time for 400 submissions.
A flag is a reason to read the two submissions side by side, not a verdict.
"""
from __future__ import annotations

import argparse
import ast
import functools
import html
import io
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from autograder import records

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "lec4"
NOISE = 25        # copydetect's k: k-grams of this many filtered characters (its default noise threshold)
WINDOW = 2        # winnowing window (1 keeps every k-gram)
THRESHOLD = 0.5   # flag a pair whose score is at least this ...
FUNCTION_THRESHOLD = 0.8  # ... or one of whose graded functions alone scores at least this (one copied function)
CANDIDATE = 0.5   # pairs whose shared fingerprints reach this share of a threshold are compared exactly


@dataclass
class Submission:
    student: str
    parts: dict[str, str]                       # graded function -> its code (+ helpers)
    fingerprints: dict = field(default_factory=dict, repr=False)


def _defs(tree: ast.Module) -> dict[str, ast.AST]:
    found = {}
    for node in tree.body:  # the last definition wins, as when Python runs the code
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = node
    return found


def graded_parts(source: str, functions: list[str], given: set[str]) -> dict[str, str]:
    """{function: its code and its helpers' code} from a submission's graded source. ``given``:
    top-level names the release notebook defines itself (never the student's helpers)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {"(whole submission, not valid Python)": source}
    defs = _defs(tree)
    lines = source.splitlines(keepends=True)

    def segment(node) -> str:  # the definition's lines, decorators included
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return "".join(lines[first - 1:node.end_lineno])
    parts = {}
    for function in functions:
        if function not in defs:
            continue
        seen, todo = set(), [function]
        while todo:
            name = todo.pop()
            if name in seen or name not in defs or (name != function and (name in given or name in functions)):
                continue
            seen.add(name)
            todo += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name)]
        helpers = sorted(seen - {function})
        parts[function] = "\n\n".join(segment(defs[n]) for n in [function] + helpers)
    return parts


def _same_code(a: str, b: str) -> bool:
    """Equal up to comments and layout (same syntax tree)."""
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except SyntaxError:
        return a.strip() == b.strip()


def boilerplate_code(assignment: str, course_root: Path = ROOT) -> tuple[str, set[str], list[str], dict[str, str]]:
    """(boilerplate text, names the release defines, the graded functions students write, each
    function's starter code in the release)."""
    from autograder.notebook import read_notebook, submission_source
    from autograder.suites import load_suite

    suite = load_suite(assignment)
    # the course's notebooks, else the grader repository's (a course folder may hold only records)
    source_nb, release_nb = [Path(course_root) / folder / assignment / suite.NOTEBOOK
                             if (Path(course_root) / folder / assignment / suite.NOTEBOOK).exists()
                             else ROOT / folder / assignment / suite.NOTEBOOK for folder in ("solutions", "assignments")]
    release = submission_source(source_nb, release_nb)
    starter_defs: dict[str, str] = {}
    for cell in read_notebook(release_nb).cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("solution"):
            try:
                defs = _defs(ast.parse(cell.source))
            except SyntaxError:
                continue
            starter_defs.update({n: ast.get_source_segment(cell.source, d) or "" for n, d in defs.items()})
    functions = [f for f in dict.fromkeys(fn for fn, _ in suite.GRADE_CELLS.values()) if f in starter_defs]
    given = set(_defs(ast.parse(release))) - set(functions)
    library = "\n\n".join(p.read_text() for p in sorted(LIBRARY.rglob("*.py")))
    return release + "\n\n" + library, given, functions, {f: starter_defs[f] for f in functions}


def fingerprint(code: str, boilerplate=None):
    from copydetect import CodeFingerprint

    return CodeFingerprint("submission.py", NOISE, WINDOW, boilerplate=boilerplate, fp=io.StringIO(code))


def estimate(a: Submission, b: Submission) -> tuple[float, float]:
    """A quick upper-bound-like estimate from shared fingerprints alone: (pair, best function)."""
    shared = total = best = 0.0
    for function, fa in a.fingerprints.items():
        fb = b.fingerprints.get(function)
        size = len(fa.hash_set) + (len(fb.hash_set) if fb else 0)
        total += size
        if fb is not None and size:
            both = 2 * len(fa.hash_set & fb.hash_set)
            shared += both
            best = max(best, both / size)
    total += sum(len(fb.hash_set) for f, fb in b.fingerprints.items() if f not in a.fingerprints)
    return (shared / total if total else 0.0), best


def compare(a: Submission, b: Submission) -> tuple[float, dict[str, float]]:
    """(score, per-function score) of a pair (see module doc)."""
    from copydetect import compare_files

    shared, total, per = 0.0, 0.0, {}
    for function in sorted(set(a.fingerprints) | set(b.fingerprints)):
        fa, fb = a.fingerprints.get(function), b.fingerprints.get(function)
        size = (fa.token_coverage if fa else 0) + (fb.token_coverage if fb else 0)
        total += size
        if fa is None or fb is None or not (fa.hash_set & fb.hash_set):
            per[function] = 0.0
            continue
        overlap, (s1, s2), _ = compare_files(fa, fb)
        both = s1 * fa.token_coverage + s2 * fb.token_coverage
        shared += both
        per[function] = round(float(both / size), 3) if size else 0.0
    return (round(float(shared / total), 3) if total else 0.0), per


@functools.lru_cache(maxsize=8)
def _boilerplate(assignment: str, course_root: Path):
    """(boilerplate fingerprints, given names, graded functions, starters): computed once per process."""
    import numpy as np

    text, given, functions, starters = boilerplate_code(assignment, course_root)
    return np.array(sorted(fingerprint(text).hashes), dtype=np.int64), given, functions, starters


def analyse(assignment: str, sources: dict[str, str], course_root: Path = ROOT, threshold: float = THRESHOLD) -> dict:
    """Every pair's score for {student: graded source}; the flagged pairs, best first (JSON data)."""
    boilerplate, given, functions, starters = _boilerplate(assignment, Path(course_root))
    subs = []
    for student, source in sorted(sources.items()):
        sub = Submission(student, graded_parts(source, functions, given))
        # a function left as the release's starter is not the student's code: it never counts
        sub.parts = {f: code for f, code in sub.parts.items() if not _same_code(code, starters.get(f, ""))}
        for function, code in sub.parts.items():
            fp = fingerprint(code, boilerplate)
            fp.hash_set = frozenset(fp.hashes)
            sub.fingerprints[function] = fp
        subs.append(sub)
    pairs, exact = [], 0
    for a, b in itertools.combinations(subs, 2):
        # copydetect's exact comparison only for pairs whose shared fingerprints come near a threshold
        rough, best = estimate(a, b)
        if rough < CANDIDATE * threshold and best < CANDIDATE * FUNCTION_THRESHOLD:
            continue
        score, per = compare(a, b)
        exact += 1
        if score > 0:
            pairs.append({"a": a.student, "b": b.student, "score": score, "per_function": per})
    pairs.sort(key=lambda p: (-p["score"], p["a"], p["b"]))
    flagged = [p for p in pairs if p["score"] >= threshold
               or max(p["per_function"].values(), default=0) >= FUNCTION_THRESHOLD]
    return {"assignment": assignment, "submissions": len(subs), "functions": functions, "threshold": threshold,
            "function_threshold": FUNCTION_THRESHOLD,
            "method": f"copydetect fingerprints (k={NOISE}, window={WINDOW}), boilerplate: release notebook + lec4",
            "pairs": len(subs) * (len(subs) - 1) // 2, "compared_exactly": exact,
            "flagged": flagged, "closest": pairs[:20],
            "_parts": {s.student: s.parts for s in subs}}


def load_sources(course_root: Path, assignment: str) -> dict[str, str]:
    folder = Path(course_root) / records.RECORDS / assignment
    sources = {}
    for path in sorted(folder.glob("*.json")):
        try:
            sources[path.stem] = records.read_record(path)["source"]
        except records.RecordError as err:
            print(f"similarity: skipped {path.name}: {err}", file=sys.stderr)
    return sources


def render_html(result: dict) -> str:
    parts = result["_parts"]
    e = html.escape
    rows = []
    for n, p in enumerate(result["flagged"], 1):
        sides = []
        for who in (p["a"], p["b"]):
            code = "\n\n".join(f"# --- {f} ---\n{c}" for f, c in sorted(parts[who].items()))
            sides.append(f"<div class=\"side\"><h3>{e(who)}</h3><pre><code>{e(code)}</code></pre></div>")
        per = ", ".join(f"{e(f)} {s:.2f}" for f, s in p["per_function"].items())
        rows.append(f"<section class=\"pair\" id=\"pair-{n}\"><h2>{n}. {e(p['a'])} and {e(p['b'])}: "
                    f"score <span class=\"score\">{p['score']:.2f}</span></h2><p>Per function: {per}</p>"
                    f"<div class=\"sides\">{''.join(sides)}</div></section>")
    css = (":root{color-scheme:light dark;--fg:#1a1a1a;--bg:#fff;--line:#ccc;--code:#f5f5f5}"
           "@media (prefers-color-scheme: dark){:root{--fg:#e8e8e8;--bg:#16181d;--line:#3a3f4a;--code:#23262e}}"
           "body{font-family:system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:2rem;line-height:1.4}"
           ".sides{display:grid;grid-template-columns:1fr 1fr;gap:1rem}"
           "pre{background:var(--code);border:1px solid var(--line);padding:.5rem;overflow-x:auto;font-size:.8rem}")
    intro = (f"<p>{result['submissions']} submissions, {len(result['flagged'])} pair(s) at or above "
             f"{result['threshold']:.2f} ({e(result['method'])}). Scores: the share of both sides' code "
             "(names, comments and layout ignored) found in the other. A flag asks for a reading, "
             "not a verdict.</p>")
    body = "".join(rows) or "<p>No pair is above the threshold.</p>"
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" "
            f"content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>Similarity: {e(result['assignment'])}"
            f"</title><style>{css}</style></head><body><h1>Similarity: {e(result['assignment'])}</h1>{intro}{body}"
            "</body></html>\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assignment")
    parser.add_argument("--out", help="folder for similarity.html (default: COURSE/reports/ASSIGNMENT)")
    parser.add_argument("--json", action="store_true", help="print the flagged pairs as JSON instead")
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help=f"flag pairs scoring at least this "
                        f"(default {THRESHOLD})")


def run(args: argparse.Namespace, course_root: Path) -> int:
    sources = load_sources(course_root, args.assignment)
    if len(sources) < 2:
        print(f"similarity: {len(sources)} grade record(s) in {Path(course_root) / records.RECORDS / args.assignment}: "
              "need at least two graded submissions (run autograde first)", file=sys.stderr)
        return 2
    try:
        result = analyse(args.assignment, sources, course_root, args.threshold)
    except ValueError as err:
        print(f"similarity: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if not k.startswith("_")}, indent=1))
        return 0
    out = Path(args.out) if args.out else Path(course_root) / "reports" / args.assignment
    out.mkdir(parents=True, exist_ok=True)
    (out / "similarity.html").write_text(render_html(result), encoding="utf-8")
    print(f"similarity: {out / 'similarity.html'} ({result['submissions']} submissions, "
          f"{len(result['flagged'])} flagged pair(s))")
    return 0
