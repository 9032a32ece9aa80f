"""The snapshot tool (tests/helpers/snapshot.py) that proves a restructuring changed no
page: it must write the same bytes twice, or a comparison of before and after proves
nothing."""

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _snapshot(out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "tests.helpers.snapshot", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )


def _differing(a: Path, b: Path) -> list[str]:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    _same, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return mismatch + errors


def test_two_runs_write_the_same_documents(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    _snapshot(first)
    _snapshot(second)
    names = sorted(p.name for p in first.iterdir())
    assert len(names) > 200
    assert _differing(first, second) == []
    kinds = " ".join(names)
    for kind in ("ar-review", "es-thanks", "summary.txt", "print", "fhir.json", "export-csv"):
        assert kind in kinds
    statuses = {(first / name).read_text(encoding="utf-8").split(" ", 1)[0] for name in names}
    assert {"200", "302", "422"} <= statuses
