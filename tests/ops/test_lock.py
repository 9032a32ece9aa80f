"""The lock files and pyproject.toml tell one story, and the tests run on what is locked.

pyproject.toml keeps compatible ranges; requirements.lock (the app) and
requirements-test.lock (the app and its test extra) pin every package with hashes.
`make lock` rewrites both from pyproject.toml.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")
PROJECT = "patientapp"


def project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["project"]


def declared(extras: tuple[str, ...]) -> dict[str, Requirement]:
    """Direct requirements of the app, plus those of the given extras."""
    lines = list(project()["dependencies"])
    for extra in extras:
        lines += project()["optional-dependencies"][extra]
    requirements = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in requirements}


def parse_lock(path: Path) -> tuple[dict[str, str], set[str]]:
    """(name -> pinned version, names the lock says come straight from pyproject.toml)."""
    pins: dict[str, str] = {}
    direct: set[str] = set()
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = match.group(2)
        elif current and re.search(rf"#\s+(via\s+)?{PROJECT}\b", line):
            direct.add(current)
    return pins, direct


LOCKS = [("requirements.lock", ()), ("requirements-test.lock", ("test",))]


@pytest.mark.parametrize(("lock", "extras"), LOCKS)
def test_every_declared_dependency_is_pinned_within_its_range(lock, extras):
    pins, _direct = parse_lock(ROOT / lock)
    for name, requirement in declared(extras).items():
        assert name in pins, f"{name} is in pyproject.toml but not in {lock}: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {name}=={pins[name]}, outside {requirement.specifier}: run make lock"
        )


@pytest.mark.parametrize(("lock", "extras"), LOCKS)
def test_nothing_is_locked_as_direct_that_pyproject_does_not_ask_for(lock, extras):
    _pins, direct = parse_lock(ROOT / lock)
    stale = direct - set(declared(extras))
    assert not stale, f"{lock} still pins {sorted(stale)} for {PROJECT}: run make lock"


@pytest.mark.parametrize(("lock", "extras"), LOCKS)
def test_every_pin_carries_a_hash(lock, extras):
    text = (ROOT / lock).read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    for block in blocks:
        if PIN.match(block.splitlines()[0]):
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_the_app_lock_is_the_test_lock_less_the_test_tools():
    app_pins, _ = parse_lock(ROOT / "requirements.lock")
    test_pins, _ = parse_lock(ROOT / "requirements-test.lock")
    for name, version in app_pins.items():
        assert test_pins.get(name) == version, f"{name}: {version} vs {test_pins.get(name)}"


def test_the_suite_runs_on_the_locked_versions():
    """What is tested is what a clinic installs: the environment matches the lock."""
    pins, _ = parse_lock(ROOT / "requirements-test.lock")
    for name, requirement in declared(("test",)).items():
        assert metadata.version(requirement.name) == pins[name], name


def test_parser_reads_a_real_lock_entry(tmp_path):
    """The checks above would pass on an empty parse: make sure the parser finds pins."""
    lock = tmp_path / "x.lock"
    lock.write_text(
        "flask==3.1.3 \\\n    --hash=sha256:ab\n    # via patientapp (pyproject.toml)\n"
        "click==8.5.1 \\\n    --hash=sha256:cd\n    # via flask\n"
        "colorama==0.4.6 ; sys_platform == 'win32' \\\n    --hash=sha256:ef\n"
        "    # via\n    #   click\n    #   patientapp (pyproject.toml)\n",
        encoding="utf-8",
    )
    pins, direct = parse_lock(lock)
    assert pins == {"flask": "3.1.3", "click": "8.5.1", "colorama": "0.4.6"}
    assert direct == {"flask", "colorama"}
    real_pins, real_direct = parse_lock(ROOT / "requirements-test.lock")
    assert len(real_pins) > 20 and "flask" in real_direct
