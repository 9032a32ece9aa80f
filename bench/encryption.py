"""The cost of encryption at rest, run by hand:  python bench/encryption.py  [--smoke]

Prints, for a plain and a SQLCipher database built the same way in a temporary folder:
  * open: opening a connection with every pragma (SQLCipher derives the key here, once
    per connection; the server keeps one connection per thread);
  * step save: p50 / p95 of one patient step saved as visits.save_step does it (answers,
    step, a BEGIN IMMEDIATE transaction, synchronous=FULL commit);
  * file sizes after VISITS whole visits: the database, and a backup;
  * a continuous copy (domain/copies.py, as serve makes one every interval): its time,
    and the recovery point it gives at the default 5-minute interval;
  * encrypt-db and rekey-db on that database (the encrypted one's numbers).

Nothing is written inside the repository. Not a test module.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the app runs from the source tree, not installed

from patientapp import create_app  # noqa: E402
from patientapp.cli import examples  # noqa: E402
from patientapp.db import storage  # noqa: E402
from patientapp.domain import copies, visits  # noqa: E402
from patientapp.questionnaire import model as questionnaire  # noqa: E402
from patientapp.web.context import close_thread_db, get_db  # noqa: E402

KEY = "bench key: four unrelated words"


def build(folder: Path, key: str | None, count: int):
    """An app on a fresh database in folder with `count` whole visits."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "DATABASE": str(folder / "bench.db"),
            "DATABASE_KEY": key,
        }
    )
    q = questionnaire.default()
    steps = examples.by_step(examples.LOWER_THE_DOSE, q)
    with app.app_context():
        db = get_db()
        now = datetime.now()
        for n in range(count):
            made = visits.create(
                db,
                patient_ref=f"B-{n}",
                appointment_at=now + timedelta(hours=1),
                psychiatrist_id=None,
                suggested_language="",
                extra_days=0,
                created_by=None,
                now=now,
            )
            visits.start(db, made.visit_id, language="en", version=q.version, now=now)
            for number, answers in steps.items():
                visits.save_step(
                    db, made.visit_id, answers, step=number, next_step=number + 1, now=now
                )
    return app, steps, made.visit_id


def timed(function, repeat: int) -> list[float]:
    found = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        found.append((time.perf_counter() - started) * 1000)
    return found


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(len(values) * 0.95) - 1)]


def measure(folder: Path, key: str | None, count: int, saves: int) -> dict:
    app, steps, visit_id = build(folder, key, count)
    path = app.config["DATABASE"]
    opens = timed(lambda: storage.connect(path, key=key).close(), max(3, saves // 20))
    with app.app_context():
        db = get_db()
        answers = steps[1]
        save = timed(
            lambda: visits.save_step(
                db, visit_id, answers, step=1, next_step=2, now=datetime.now()
            ),
            saves,
        )
        storage.checkpoint(db)
        storage.backup(db, folder / "backup.db", key)
        plan = copies.Plan(folder / "copies", timedelta(minutes=5), keep=2, command="")
        plan.folder.mkdir()  # as serve makes it at start
        copy = timed(lambda: copies.make(db, plan, key, datetime.now(UTC)), 5)
    close_thread_db()
    result = {
        "open_ms": statistics.median(opens),
        "save_p50_ms": statistics.median(save),
        "save_p95_ms": p95(save),
        "db_bytes": Path(path).stat().st_size,
        "backup_bytes": (folder / "backup.db").stat().st_size,
        "copy_ms": statistics.median(copy),
    }
    if key:
        runner = app.test_cli_runner()
        started = time.perf_counter()
        (folder / "new_key").write_text("another bench key\n")
        outcome = runner.invoke(args=["rekey-db", "--new-key-file", str(folder / "new_key")])
        result["rekey_ms"] = (time.perf_counter() - started) * 1000
        assert outcome.exit_code == 0, outcome.output
        close_thread_db()
    else:
        app.config["DATABASE_KEY"] = KEY
        started = time.perf_counter()
        outcome = app.test_cli_runner().invoke(args=["encrypt-db"])
        result["encrypt_ms"] = (time.perf_counter() - started) * 1000
        assert outcome.exit_code == 0, outcome.output
        close_thread_db()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, seconds")
    parser.add_argument("--visits", type=int, default=500)
    parser.add_argument("--saves", type=int, default=200)
    args = parser.parse_args(argv)
    count, saves = (3, 5) if args.smoke else (args.visits, args.saves)
    rows = {}
    for name, key in (("plain", None), ("sqlcipher", KEY)):
        with tempfile.TemporaryDirectory(prefix="patientapp-bench-enc-") as folder:
            rows[name] = measure(Path(folder), key, count, saves)
    plain, cipher = rows["plain"], rows["sqlcipher"]
    print(f"{count} visits, {saves} step saves each; times in ms")
    print(f"{'':24}{'plain':>12}{'sqlcipher':>12}{'ratio':>8}")
    for label, field in (
        ("open a connection", "open_ms"),
        ("step save p50", "save_p50_ms"),
        ("step save p95", "save_p95_ms"),
        ("database bytes", "db_bytes"),
        ("backup bytes", "backup_bytes"),
        ("continuous copy", "copy_ms"),
    ):
        ratio = cipher[field] / plain[field] if plain[field] else float("nan")
        print(f"{label:24}{plain[field]:>12,.1f}{cipher[field]:>12,.1f}{ratio:>8.2f}")
    for name, row in rows.items():
        took = timedelta(milliseconds=row["copy_ms"])
        point = copies.recovery_point(timedelta(minutes=5), took).total_seconds()
        print(f"recovery point, copies every 5 min ({name}): {point:,.1f} s")
    print(f"encrypt-db (plain database above): {plain['encrypt_ms']:,.0f} ms")
    print(f"rekey-db (encrypted database above): {cipher['rekey_ms']:,.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
