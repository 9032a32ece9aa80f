"""deploy/patientapp.service: systemd accepts it, it keeps its hardening, it runs the
command README documents, and the app works under its memory-deny-write-execute."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.ops.test_server import free_port, running

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "patientapp.service"
README = ROOT / "README.md"
INSTALL = "/opt/patientapp"

# key -> the value it must have (None: present with any value).
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/var/lib/patientapp",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
    "Restart": "on-failure",
    "EnvironmentFile": None,
}


def service_section(text: str) -> dict[str, list[str]]:
    """Each key of [Service] with its values in order (a key may repeat)."""
    values: dict[str, list[str]] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_the_unit_keeps_its_hardening():
    service = service_section(UNIT.read_text(encoding="utf-8"))
    missing = {
        key: want
        for key, want in HARDENING.items()
        if key not in service or (want is not None and want not in service[key])
    }
    assert missing == {}, f"hardening lost from {UNIT.name}: {missing}"
    assert service["User"] != ["root"] and service["User"] == service["Group"]
    assert service["Environment"] == ["PATIENTAPP_INSTANCE=/var/lib/patientapp"]
    assert service["StateDirectory"] == ["patientapp"]


def test_the_unit_runs_the_command_readme_documents():
    service = service_section(UNIT.read_text(encoding="utf-8"))
    [exec_start] = service["ExecStart"]
    [working] = service["WorkingDirectory"]
    program, *args = shlex.split(exec_start)
    assert working == INSTALL and program == f"{INSTALL}/.venv/bin/flask"
    assert args == ["--app", "app", "serve"]  # host, port, threads: the EnvironmentFile
    readme = README.read_text(encoding="utf-8")
    assert ".venv/bin/flask --app app serve" in readme  # Operations' serve line
    assert f"ExecStart={exec_start}" in readme  # the service section shows the line itself
    assert "deploy/patientapp.service" in readme and "systemctl enable --now patientapp" in readme


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_finds_nothing_wrong(tmp_path):
    """The unit as shipped, but for ExecStart pointing at this machine's own Python (verify
    insists that the program exists)."""
    text = UNIT.read_text(encoding="utf-8").replace(
        f"ExecStart={INSTALL}/.venv/bin/flask", f"ExecStart={sys.executable} -m flask"
    )
    assert text != UNIT.read_text(encoding="utf-8")
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).strip() == "", result.stdout + result.stderr


# The app under PR_SET_MDWE (Linux 6.3+), the kernel's own form of MemoryDenyWriteExecute:
# first a proof that it is on, then argon2 (cffi) and `flask serve`, forked workers and all.
UNDER_MDWE = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("no-mdwe"); sys.exit(3)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    print("mdwe-not-enforced"); sys.exit(4)
import argon2
argon2.PasswordHasher().verify(argon2.PasswordHasher().hash("x"), "x")
from flask.cli import main
sys.argv = ["flask", "--app", "app", "serve"]
main()
"""


def test_the_app_serves_under_memory_deny_write_execute(tmp_path):
    pytest.importorskip("sqlcipher3")
    port = free_port()
    env = {
        **os.environ,
        "PATIENTAPP_INSTANCE": str(tmp_path / "instance"),
        "PATIENTAPP_HOST": "127.0.0.1",
        "PATIENTAPP_PORT": str(port),
        "PATIENTAPP_THREADS": "2",
        "PATIENTAPP_WORKERS": "2",
        "PATIENTAPP_DB_KEY": "a key for the service test",  # SQLCipher and its OpenSSL
    }
    probe = subprocess.run(
        [sys.executable, "-c", UNDER_MDWE.split("import argon2")[0]],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if "no-mdwe" in probe.stdout:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    command = [sys.executable, "-c", UNDER_MDWE]
    with running(command, port, tmp_path / "serve.log", cwd=ROOT, env=env):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            assert answer.status == 200
            assert json.load(answer)["database"] == "encrypted"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/start", timeout=10) as answer:
            assert answer.status == 200
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "Traceback" not in log, log
