"""environment.yml (conda, for the JupyterHub image) and the pip pins must agree."""
from __future__ import annotations

import re

import yaml

from conftest import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)")


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def requirement_pins() -> dict[str, str]:
    return _pins((ROOT / "requirements.txt").read_text().splitlines())


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _pins(pip_section)


def test_every_requirement_is_pinned_exactly():
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.strip().startswith("#")]
    loose = [ln for ln in lines if not PIN.match(ln)]
    assert not loose, f"requirements.txt entries without an exact == pin: {loose}"


def test_environment_yml_matches_requirements():
    req, env = requirement_pins(), environment_pins()
    assert req, "no pins parsed from requirements.txt"
    mismatched = {k: (req.get(k), env.get(k)) for k in set(req) | set(env) if req.get(k) != env.get(k)}
    assert not mismatched, f"pins disagree (requirements.txt, environment.yml): {mismatched}"


def test_environment_yml_python_matches_supported_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def test_lock_file_agrees_with_direct_pins():
    lock = _pins((ROOT / "requirements-lock.txt").read_text().splitlines())
    disagree = {k: (v, lock.get(k)) for k, v in requirement_pins().items() if lock.get(k) != v}
    assert not disagree, f"requirements-lock.txt disagrees with requirements.txt: {disagree}"


def test_torch_is_the_cpu_pin():
    assert requirement_pins()["torch"] == "2.13.0"
