"""``python -m autograder publish DEST``: the public course repository.

What every student's home receives (the book's launch buttons clone ``repository.url`` with
nbgitpuller) and what the published site links to: the book, the library, the release
notebooks, a student README and what installs ``lec4`` -- taken from the staff repository's
HEAD, in a git history of its own (one commit). Nothing else: not ``solutions/`` (instructor
notebooks), ``autograder/`` (hidden suites, catalog, engine), ``tests/``, ``benchmarks/`` (its
scripts read the solutions; the tables the book shows ship inside ``lec4``), nor the hub's state.

    python -m autograder publish DEST [--author "Name <email>"]             # a new repository
    python -m autograder publish --update CLONE [--author "Name <email>"]   # the next commit of it

``--update`` takes a clone of the public repository (clean working tree) and commits HEAD's public
files on top of its history, so the clones nbgitpuller made in students' homes pull it as a
fast-forward (a fresh one-commit repository would share no history with them). One code path:
``make hub`` refreshes its launch repository with :func:`refresh` too (``hub.ensure_course_repository``).

Refused, with exit status 2 and nothing written: DEST inside the staff repository (a student
clone of it would sit beside the solutions), DEST not empty, uncommitted changes in the files
that are published (HEAD is what gets published; say so rather than publish something else).
"""
from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

from autograder import options

ROOT = Path(__file__).resolve().parents[1]
# Copied from HEAD as they are (tracked files only).
PUBLIC_PATHS = ("book", "src", "assignments", "environment.yml", "requirements.txt", "requirements-lock.txt")
# Written by publish from these sources (which must be committed too).
GENERATED_FROM = {"README.md": "autograder/templates/public/README.md", "pyproject.toml": "pyproject.toml",
                  ".gitignore": "autograder/templates/public/gitignore"}
DEFAULT_AUTHOR = "Course staff <course-staff@localhost>"
AUTHOR = re.compile(r"^\s*([^<>]+?)\s*<([^<>\s]+)>\s*$")


class PublishError(Exception):
    """Bad input: the message says what was wrong and what was expected."""


def _git(source: Path, *args: str, binary: bool = False) -> str | bytes:
    result = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=not binary)
    if result.returncode != 0:
        err = result.stderr if not binary else result.stderr.decode(errors="replace")
        raise PublishError(f"`git {' '.join(args)}` in {source} failed: {err.strip()}")
    return result.stdout


def source_commit(source: Path) -> str:
    """The staff repository's HEAD (full hash)."""
    return _git(source, "rev-parse", "HEAD").strip()


def uncommitted(source: Path) -> list[str]:
    """Changed, staged or untracked (not ignored) files among what gets published."""
    paths = [*PUBLIC_PATHS, *GENERATED_FROM.values()]
    status = _git(source, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    return [line for line in status.splitlines() if line.strip()]


def public_pyproject(source: Path) -> str:
    """pyproject.toml that installs ``lec4`` alone: the staff one's [project] and lec4's package
    data, without the autograder package (one source for the name, version and dependencies)."""
    text = _git(source, "show", "HEAD:pyproject.toml")
    config = tomllib.loads(text)
    project, setuptools = config["project"], config.get("tool", {}).get("setuptools", {})
    data = setuptools.get("package-data", {}).get("lec4", [])

    def value(v) -> str:  # TOML basic strings and arrays of them are JSON's
        return json.dumps(v)

    lines = ["# Installs lec4, the library of the course book (written by `python -m autograder publish`).",
             "[build-system]", *(f"{k} = {value(v)}" for k, v in config["build-system"].items()), "",
             "[project]", *(f"{k} = {value(v)}" for k, v in project.items() if isinstance(v, (str, list))), "",
             "[tool.setuptools.packages.find]", 'where = ["src"]', 'include = ["lec4*"]', ""]
    if data:
        lines += ["[tool.setuptools.package-data]", f"lec4 = {value(data)}", ""]
    return "\n".join(lines)


def book_title(tree: Path) -> str:
    import yaml

    return (yaml.safe_load((tree / "book" / "_config.yml").read_text()) or {}).get("title") or "Course repository"


def write_public_tree(source: Path, dest: Path) -> str:
    """Write the public files of ``source``'s HEAD into the folder ``dest`` (which holds nothing
    but possibly ``.git``); return the source commit. What ``publish`` and ``make hub`` share."""
    commit = source_commit(source)
    archive = _git(source, "archive", "--format=tar", "HEAD", "--", *PUBLIC_PATHS, binary=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    readme = _git(source, "show", f"HEAD:{GENERATED_FROM['README.md']}")
    (dest / "README.md").write_text(readme.format(title=book_title(dest), source_commit=commit[:12]))
    (dest / "pyproject.toml").write_text(public_pyproject(source))
    (dest / ".gitignore").write_bytes(_git(source, "show", f"HEAD:{GENERATED_FROM['.gitignore']}", binary=True))
    return commit


def commit_tree(repo: Path, message: str, author: str = DEFAULT_AUTHOR) -> bool:
    """Commit everything in ``repo`` (a git repository) as ``author``, also as committer, so no
    machine's identity ends up in the public history. False when nothing changed."""
    match = AUTHOR.match(author)
    if match is None:
        raise PublishError(f"--author {author!r}: expected 'Name <email>', e.g. {DEFAULT_AUTHOR!r}")
    name, email = match.groups()
    env = options.child_env(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email,
                            GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email)
    subprocess.run(["git", "-C", str(repo), "add", "--all"], check=True, capture_output=True)
    if not subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], check=True, capture_output=True,
                          text=True).stdout.strip():
        return False
    subprocess.run(["git", "-C", str(repo), "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", message],
                   check=True, capture_output=True, env=env)
    return True


def refresh(repo: Path, source: Path = ROOT, author: str = DEFAULT_AUTHOR) -> bool:
    """Replace the files of the git repository ``repo`` by ``source``'s public files and commit
    them on top of its history; False when nothing changed. What ``--update`` and ``make hub`` run."""
    for entry in repo.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    commit = write_public_tree(source, repo)
    return commit_tree(repo, f"Course repository: book, lec4 and release notebooks (from {commit[:12]})", author)


def check_source(source: Path, author: str) -> None:
    if not (source / ".git").exists():
        raise PublishError(f"{source} is not a git checkout (publish takes the public files from its HEAD)")
    if AUTHOR.match(author) is None:
        raise PublishError(f"--author {author!r}: expected 'Name <email>', e.g. {DEFAULT_AUTHOR!r}")
    dirty = uncommitted(source)
    if dirty:
        raise PublishError("uncommitted changes in files that would be published (publish takes HEAD; commit "
                           "or stash them first):\n  " + "\n  ".join(dirty[:20]) +
                           (f"\n  ... and {len(dirty) - 20} more" if len(dirty) > 20 else ""))


def check_outside(source: Path, dest: Path) -> None:
    source, dest = source.resolve(), dest.resolve()
    if dest == source or source in dest.parents:
        raise PublishError(f"DEST {dest} is inside the staff repository {source}: the public repository "
                           "must live outside it (e.g. ../lecture4-public), or its files would sit beside "
                           "the solutions and in the staff's working tree")


def update(dest: Path, source: Path = ROOT, author: str = DEFAULT_AUTHOR) -> bool:
    """``--update``: commit ``source``'s public HEAD on top of the public repository's clone ``dest``."""
    source, dest = Path(source).resolve(), Path(dest).absolute()
    check_outside(source, dest)
    if not (dest / ".git").is_dir():
        raise PublishError(f"--update {dest}: not a git repository; expected a clone of the public course "
                           "repository (or publish a new one without --update)")
    check_source(source, author)
    status = subprocess.run(["git", "-C", str(dest), "status", "--porcelain"], capture_output=True, text=True)
    if status.returncode != 0 or status.stdout.strip():
        raise PublishError(f"--update {dest}: its working tree has uncommitted changes (or is not readable); "
                           f"commit or remove them first:\n{(status.stdout or status.stderr)[:1000]}")
    staff = subprocess.run(["git", "-C", str(dest), "log", "--all", "--format=%h", "--", "solutions", "autograder",
                            "tests"], capture_output=True, text=True).stdout.split()
    if staff:
        raise PublishError(f"--update {dest}: its history holds staff material (solutions/, autograder/ or tests/ "
                           f"in {', '.join(staff[:3])}); it is not a public course repository: publish a new one")
    return refresh(dest, source, author)


def check_destination(source: Path, dest: Path) -> None:
    check_outside(source, dest)
    dest = dest.resolve()
    if dest.exists() and not dest.is_dir():
        raise PublishError(f"DEST {dest} is a file; expected a new or empty folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise PublishError(f"DEST {dest} is not empty ({', '.join(sorted(p.name for p in dest.iterdir())[:5])}"
                           "...); expected a new or empty folder (publish writes a fresh repository with one commit)")


def publish(dest: Path, source: Path = ROOT, author: str = DEFAULT_AUTHOR) -> str:
    """Write the public course repository into ``dest`` (new or empty) with one commit; return
    the source commit. Every check runs before anything is written."""
    source, dest = Path(source).resolve(), Path(dest).absolute()
    check_destination(source, dest)
    check_source(source, author)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["git", "init", "--quiet", "--initial-branch", "main", str(dest)], check=True,
                       capture_output=True)
        refresh(dest, source, author)
        commit = source_commit(source)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for entry in dest.iterdir():
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        raise
    return commit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", metavar="DEST", help="a new or empty folder outside this repository "
                        "(with --update: a clone of the public repository)")
    parser.add_argument("--update", action="store_true",
                        help="commit on top of the public repository's clone DEST (students' clones fast-forward)")
    parser.add_argument("--author", default=DEFAULT_AUTHOR,
                        help=f"author and committer of the public commit, 'Name <email>' (default {DEFAULT_AUTHOR!r})")
    parser.add_argument("--source", default=str(ROOT), help=argparse.SUPPRESS)  # tests: a clone of this repo


def run(args: argparse.Namespace) -> int:
    dest = Path(args.dest).resolve()
    try:
        if args.update:
            changed = update(dest, Path(args.source), args.author)
            print(f"{dest}: {'committed' if changed else 'unchanged, nothing to commit'}; "
                  f"push it: git -C {dest} push")
            return 0
        commit = publish(dest, Path(args.source), args.author)
    except PublishError as err:
        print(f"publish: error: {err}", file=sys.stderr)
        return 2
    files = subprocess.run(["git", "-C", str(dest), "ls-files"], capture_output=True, text=True).stdout.split()
    print(f"published {len(files)} files from {commit[:12]} into {dest} (one commit on branch main).\n"
          f"Push it to the public repository and set repository.url in book/_config.yml to it:\n"
          f"  git -C {dest} remote add origin <URL> && git -C {dest} push -u origin main")
    return 0
