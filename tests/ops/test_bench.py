"""The benchmark cannot rot: bench/run.py --smoke runs every measurement with tiny counts."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("page weight", "load", "cpu", "machine", "rush", "burst", "staff")
# Rows a fair bench must print (issue: hello-world and a static file under the same server,
# server CPU per unit, the machine's other load, the rush with keep-alive phones).
EXPECTED_ROWS = (
    ("page weight", "step 1"),
    ("page weight", "asset /static/"),
    ("load", "patient step (GET+POST) p50 / p95"),
    ("load", "hello world (GET+POST) p50 / p95"),
    ("load", "static file GET p50 / p95"),
    ("load", "patient step / hello world"),
    ("cpu", "server CPU per patient step (GET+POST)"),
    ("cpu", "server CPU per hello world pair"),
    ("cpu", "server CPU per static GET"),
    ("cpu", "load generator CPU per unit"),
    ("machine", "other load during hello world"),
    ("machine", "other load during static file"),
    ("rush", "first page within 30 s"),
    ("rush", "starved"),
    ("rush", "every request p50 / p95"),
    ("rush", "most connections open to the server at once"),
    ("rush", "errors"),
    ("rush", "other load during the rush"),
)
VERDICTS = {"OK", "OVER", "SLOW", "LOW", "FAIL"}


# The checkout's own instance folders belong to a server the developer may be running
# (`make run`, `make demo`): its database and WAL change under the suite. The bench runs
# in a folder of its own, so nothing it writes can land there.
LIVE_FOLDERS = ("instance", "demo-instance")


def repo_files(root: Path = ROOT) -> dict[Path, tuple[int, int]]:
    """Every file of the checkout with its mtime and size (hidden folders, bytecode
    caches and a running server's instance folders aside)."""
    found = {}
    live = {root / name for name in LIVE_FOLDERS}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [
            d
            for d in subfolders
            if not d.startswith(".") and d != "__pycache__" and Path(folder) / d not in live
        ]
        for name in names:
            info = (Path(folder) / name).stat()
            found[Path(folder) / name] = (info.st_mtime_ns, info.st_size)
    return found


def test_a_server_running_from_the_checkout_does_not_fail_the_suite(tmp_path):
    """Found by running `make test` while `make run` served from the same folder: the
    live database's WAL changed under the bench test's before/after comparison. (The
    checkout's layout in a temporary folder: the test writes nothing into the checkout.)"""
    (tmp_path / "patientapp").mkdir()
    (tmp_path / "patientapp" / "storage.py").write_text("# code\n")
    live = tmp_path / "instance"
    live.mkdir()
    (live / "patientapp.db").write_bytes(b"db")
    before = repo_files(tmp_path)
    (live / "patientapp.db-wal").write_bytes(b"a live server's WAL")
    (live / "patientapp.db").write_bytes(b"db, checkpointed")
    (tmp_path / "demo-instance").mkdir()
    assert repo_files(tmp_path) == before
    (tmp_path / "patientapp" / "stray.db").write_bytes(b"written by a test")
    assert repo_files(tmp_path) != before  # anywhere else, a change still counts


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
    for section, what in EXPECTED_ROWS:
        assert any(row.startswith(section) and what in row for row in rows), (section, what)
    header = result.stdout.splitlines()[0]
    assert " workers x " in header and " threads" in header, header
    assert "load generator " in header and " processes" in header, header
    columns = next(line for line in result.stdout.splitlines() if line.startswith("section "))
    assert " wire " in columns and "wire budget" in columns
    for row in rows:  # the HTML on the wire, marked raw or gzip as the app sent it
        if row.startswith("page weight") and " asset " not in row:
            assert " KB raw " in row or " B raw " in row or " gzip " in row, row
    verdicts = [row.split()[-1] for row in rows if row.split()[-1] in VERDICTS]
    assert "FAIL" not in verdicts, "\n".join(rows)
    for row in rows:
        if "errors" in row:
            assert row.split()[-1] == "OK", row
    assert repo_files() == before  # no results, databases or logs inside the checkout
    assert list(tmp_path.iterdir()) == []  # the bench's temporary folder is gone too


def smoke(script: str) -> subprocess.CompletedProcess:
    """Run one bench script with --smoke, as a person would, outside any test setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATIENTAPP_", "FLASK_"))}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_the_fhir_api_bench_runs_and_reads_every_visit():
    result = smoke("fhir_api.py")
    lines = [line for line in result.stdout.splitlines() if "visits/s" in line]
    assert len(lines) == 2 and all("errors 0" in line for line in lines), result.stdout


def load_bench_module():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SPINNER = """
import os, sys, time
pid = os.fork()
began = time.process_time()
while time.process_time() - began < 0.3:
    pass
os.write(1, b"spun\\n")  # one write each, so the two lines never interleave
time.sleep(30)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_server_cpu_counts_the_supervisor_and_its_forked_workers():
    bench = load_bench_module()
    with subprocess.Popen(
        [sys.executable, "-c", SPINNER], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            assert [process.stdout.readline() for _ in range(2)] == ["spun\n"] * 2
            assert len(bench.process_tree(process.pid)) == 2
            assert 0.55 <= bench.tree_cpu_seconds(process.pid) < 5
            assert bench.machine_busy_seconds() > 0
        finally:
            os.killpg(process.pid, signal.SIGKILL)


def test_the_delivery_bench_runs_and_every_message_arrives():
    result = smoke("delivery.py")
    lines = result.stdout.splitlines()
    assert sum(line.endswith("/min") for line in lines) == 2, result.stdout
    assert lines[-1].split() == ["reminders", "measured", "3"], result.stdout


def test_the_sign_in_bench_signs_in_and_opens_the_one_page():
    from tests.helpers.oidc_provider import available

    available()  # node and the provider's package (npm ci --prefix tests/oidc_provider)
    result = smoke("sign_in.py")
    lines = [line for line in result.stdout.splitlines() if " ms, p95 " in line]
    assert len(lines) == 4, result.stdout
    assert lines[0].startswith("sign-in, whole round trip: p50 ")
    assert lines[3].startswith("SMART launch, the app's callback: p50 ")
