"""The benchmark cannot rot: bench/run.py --smoke runs every measurement with tiny counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("page weight", "load", "burst", "staff")
VERDICTS = {"OK", "OVER", "SLOW", "LOW", "FAIL"}


def repo_files() -> dict[Path, tuple[int, int]]:
    """Every file of the checkout with its mtime and size (hidden folders and bytecode
    caches aside)."""
    found = {}
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d != "__pycache__"]
        for name in names:
            info = (Path(folder) / name).stat()
            found[Path(folder) / name] = (info.st_mtime_ns, info.st_size)
    return found


def table_rows(stdout: str) -> list[str]:
    """The table's data rows: after the header and its rule, without the other rules."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("section "))
    return [
        line
        for line in lines[start + 1 :]
        if line.strip() and not line.startswith("-") and line.startswith(SECTIONS)
    ]


def test_smoke_bench_runs_every_measurement_and_writes_nothing_here(tmp_path):
    before = repo_files()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATIENTAPP_", "FLASK_"))}
    env.update({"PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    rows = table_rows(result.stdout)
    for section in SECTIONS:
        assert any(row.startswith(section) for row in rows), f"no {section!r} rows"
    verdicts = [row.split()[-1] for row in rows if row.split()[-1] in VERDICTS]
    assert "FAIL" not in verdicts, "\n".join(rows)
    for row in rows:
        if "errors" in row:
            assert row.split()[-1] == "OK", row
    assert repo_files() == before  # no results, databases or logs inside the checkout
    assert list(tmp_path.iterdir()) == []  # the bench's temporary folder is gone too


def test_the_fhir_api_bench_runs_and_reads_every_visit():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATIENTAPP_", "FLASK_"))}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fhir_api.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "visits/s" in line]
    assert len(lines) == 2 and all("errors 0" in line for line in lines), result.stdout
