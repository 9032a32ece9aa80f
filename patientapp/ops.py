"""Operations commands: create-user, backup, purge and demo.

    flask --app app create-user --role admin|psychiatrist|frontdesk EMAIL [--name NAME]
    flask --app app backup PATH [--force]
    flask --app app purge [--dry-run]
    flask --app app demo [--force]

Each change is audited with actor "cli", since no one is signed in at a terminal.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import NoReturn

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_babel import force_locale

from . import invitations, questionnaire, storage, visits
from .admin_forms import EMAIL_SHAPE
from .auth import ROLES, hash_password, password_problem
from .web import clinic_settings, get_db, now

ACTOR = "cli"


def _audit(action: str, detail: str = "") -> None:
    storage.audit(get_db(), action, now=now(), actor=ACTOR, detail=detail)


def _fail(message: str) -> NoReturn:
    """Print to stderr and exit 1: scripts can tell a refusal from success."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


# --- create-user -------------------------------------------------------------------------


def _at_terminal() -> bool:
    return sys.stdin.isatty()


def _read_password() -> str:
    """Prompt twice, hidden, at a terminal; otherwise read one line (for scripts)."""
    if _at_terminal():
        return click.prompt("Password", hide_input=True, confirmation_prompt="Password again")
    return sys.stdin.readline().rstrip("\r\n")


@click.command("create-user")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the account may do.")
@click.option("--name", default="", help="Name as colleagues see it (default: none).")
@with_appcontext
def create_user_command(email: str, role: str, name: str) -> None:
    """Create a staff account for EMAIL. The password is asked for twice at a terminal,
    or read as one line from standard input: echo 'pw' | flask --app app create-user ..."""
    email = email.strip()
    _check_new_email(email)  # before the prompt: no one types a password for nothing
    password = _read_password()
    with force_locale("en"):  # a terminal has no browser language to follow
        problem = password_problem(password)
    if problem:
        _fail(problem)
    try:
        storage.create_user(
            get_db(),
            email=email,
            display_name=name[:80],
            password_hash=hash_password(password),
            role=role,
            now=now(),
        )
    except sqlite3.IntegrityError:
        _fail(f"an account with the email {email} already exists")
    _audit("user_created", detail=f"{email} as {role}")
    click.echo(f"Created {role} account {email}.")


def _check_new_email(email: str) -> None:
    if len(email) > 200 or not EMAIL_SHAPE.match(email):
        _fail("give an email address like name@example.org")
    if storage.user_by_email(get_db(), email) is not None:
        _fail(f"an account with the email {email} already exists")


# --- backup ------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _backup_to(target: Path) -> None:
    """Copy into a temporary file beside the target, then rename it into place, so the
    target is never a half-written copy and --force can replace any old file."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        storage.backup(get_db(), temp_name)
        os.chmod(temp_name, 0o600)  # the copy holds answers: readable by the owner only
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH if it already exists.")
@with_appcontext
def backup_command(path: Path, force: bool) -> None:
    """Write a consistent copy of the live database to PATH (safe while the app runs)."""
    target = path.expanduser().resolve()
    if not target.parent.is_dir():
        _fail(f"the folder {target.parent} does not exist")
    if _same_file(target, Path(current_app.config["DATABASE"])):
        _fail("PATH is the live database itself; choose another file")
    if target.exists() and not force:
        _fail(f"{target} already exists; add --force to replace it")
    _backup_to(target)
    size = target.stat().st_size
    _audit("backup", detail=f"{target} ({size} bytes)")
    click.echo(f"Backup written to {target} ({size:,} bytes).")


# --- purge -------------------------------------------------------------------------------


def retention_cutoff() -> datetime:
    """Midnight starting the oldest day still kept: a visit stays retention_days full days."""
    days = int(clinic_settings()["retention_days"])
    return datetime.combine(now().date() - timedelta(days=days), time.min)


def _describe(counts: dict) -> str:
    return (
        f"{counts['visits']} visits ({counts['answers']} answers, {counts['alerts']} safety alerts)"
    )


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@with_appcontext
def purge_command(dry_run: bool) -> None:
    """Delete visits whose appointment is older than the retention period in Settings.
    Their answers and alerts go with them; the audit log is kept."""
    cutoff = retention_cutoff()
    day = f"{cutoff:%Y-%m-%d}"
    if dry_run:
        counts = storage.purge_counts(get_db(), cutoff)
        click.echo(f"Dry run: would remove {_describe(counts)} with appointments before {day}.")
        return
    counts = storage.purge_before(get_db(), cutoff)
    _audit(
        "purge",
        detail=f"visits={counts['visits']} answers={counts['answers']} "
        f"alerts={counts['alerts']} before={day}",
    )
    click.echo(f"Removed {_describe(counts)} with appointments before {day}.")


# --- demo --------------------------------------------------------------------------------

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - printed by the command and in the README: demo only
DEMO_USERS = (
    ("admin", "demo-admin@example.org", "Demo Admin"),
    ("psychiatrist", "dr.rivera@example.org", "Dr. Ana Rivera"),
    ("frontdesk", "desk@example.org", "Sam Okafor"),
)

# Fictional answers, stored exactly as the patient pages store them (shapes documented at
# the top of questionnaire.toml); a missing item id means the patient skipped it.
SAFETY_CONCERN = {
    "T1": ["sad", "tired"],
    "T2": "I haven't been sleeping and everything feels heavy again.",
    "M1": [{"name": "Sertraline 100 mg", "feeling": "not_sure"}],
    "M2": "unsure",
    "M3": ["helper"],
    "M4": 6,
    "M5": ["not_myself"],
    "P1": "missed_by_accident",
    "P2": ["never"],
    "F1": ["supportive"],
    "F2": {"choice": "no", "text": ""},
    "F3": ["helped_a_lot"],
    "W1": ["stress", "past_experiences"],
    "W2": "takes_edge",
    "H1": "I could get up in the morning and go to work without dreading it.",
    "H2": ["none"],
    "R1": 3,
    "R2": "together",
    "R3": ["changing"],
    "S1": "several_days",
}
AMBIVALENT = {
    "T1": ["worried", "hopeful"],
    "T2": "Whether I really have to take this for the rest of my life.",
    "M1": [{"name": "Lithium", "feeling": "helping"}, {"name": "Quetiapine", "feeling": "mixed"}],
    "M2": "mixed",
    "M3": ["safety_net", "crutch"],
    "M4": 8,
    "M5": ["dependent", "long_term_harm"],
    "P1": "as_prescribed",
    "P2": ["felt_better"],
    "F1": ["supportive", "bad_experience"],
    "F2": {"choice": "no", "text": ""},
    "F3": ["helped_a_lot", "bad_side_effects"],
    "W1": ["body_chemistry", "stress"],
    "W2": "prevents_relapse",
    "H1": "I would trust that I can stay well, and maybe start a family.",
    "H2": ["more_expected"],
    "R1": 2,
    "R2": "together",
    "R3": ["how_long", "lowering"],
    "S1": "not_at_all",
}
FOLLOW_UP_BEFORE = {
    "T1": ["frustrated", "tired"],
    "T2": "The side effects. I feel slowed down all day.",
    "M1": [{"name": "Aripiprazole", "feeling": "not_helping"}],
    "M2": "unsure",
    "M3": ["nothing_much"],
    "M4": 4,
    "M5": ["side_effects"],
    "P1": "chose_to_skip",
    "P2": ["side_effects", "test_need"],
    "F1": ["dont_know"],
    "F2": {"choice": "no", "text": ""},
    "F3": ["not_listened"],
    "W1": ["stress"],
    "W2": "not_sure",
    "H1": "I could concentrate at work again.",
    "H2": ["none"],
    "R1": 1,
    "R2": "mostly_me",
    "R3": ["side_effects", "changing"],
    "S1": "not_at_all",
}
FOLLOW_UP_NOW = {
    "T1": ["okay", "hopeful"],
    "T2": "The new dose is better, but I want to talk about how my family sees it.",
    "M1": [{"name": "Aripiprazole", "feeling": "helping"}],
    "M2": "mixed",
    "M3": ["helper", "reminder"],
    "M4": 7,
    "M5": ["side_effects", "not_myself", "others_think"],
    "P1": "missed_by_accident",
    "P2": ["side_effects", "test_need"],
    "F1": ["dont_know", "prefer_other"],
    "F2": {
        "choice": "yes",
        "text": "At my church people say you should pray instead of taking pills.",
    },
    "F3": ["not_listened", "helped_a_lot"],
    "W1": ["stress", "spiritual"],
    "W2": "takes_edge",
    "H1": "I would feel like myself with my friends again.",
    "H2": ["relationships_change"],
    "R1": 3,
    "R2": "together",
    "R3": ["side_effects", "how_long"],
    "S1": "not_at_all",
}
IN_PROGRESS = {  # sections 1 and 2 only: the patient is on step 3 now
    "T1": ["worried"],
    "T2": "Can I stop before my exams?",
    "M1": [{"name": "Escitalopram", "feeling": "mixed"}],
    "M2": "mixed",
    "M4": 5,
    "M5": ["side_effects"],
}
SPANISH = {
    "T1": ["tired", "worried"],
    "T2": "Quiero hablar de si puedo bajar la dosis, porque me da mucho sueño.",
    "M1": [{"name": "Fluoxetina", "feeling": "mixed"}],
    "M2": "mixed",
    "M3": ["helper", "crutch"],
    "M4": 6,
    "M5": ["side_effects", "dependent"],
    "P1": "chose_to_skip",
    "P2": ["felt_better"],
    "F1": ["against"],
    "F2": {
        "choice": "yes",
        "text": "Mi madre dice que las pastillas son para los débiles y que debo ser fuerte.",
    },
    "F3": ["pressured"],
    "W1": ["relationships", "stress"],
    "W2": "takes_edge",
    "H1": "Tendría más energía para jugar con mis hijos.",
    "H2": ["none"],
    "R1": 1,
    "R2": "together",
    "R3": ["lowering", "side_effects"],
    "S1": "not_at_all",
}
IN_PERSON = {
    "T1": ["calm"],
    "T2": "Just a check-in, things are mostly okay.",
    "M1": [
        {"name": "Bupropion", "feeling": "helping"},
        {"name": "Melatonin", "feeling": "not_sure"},
    ],
    "M2": "positive",
    "M3": ["helper"],
    "M4": 7,
    "M5": ["none"],
    "P1": "stopped",
    "P2": ["cost"],
    "F1": ["supportive"],
    "F2": {
        "choice": "yes",
        "text": "Something in my family about medicine that I'd rather explain face to face.",
    },
    "F3": ["helped_a_lot"],
    "W1": ["body_chemistry"],
    "W2": "fixes_chemical",
    "H1": "I would go back to my studies.",
    "H2": ["losing_support"],
    "R1": 4,
    "R2": "psychiatrist_decides",
    "R3": ["nothing"],
    "S1": "not_at_all",
}


def _ensure_user(db, role: str, email: str, name: str, moment: datetime) -> dict:
    existing = storage.user_by_email(db, email)
    if existing is not None:
        return {"id": existing["id"], "email": email, "role": role, "created": False}
    user_id = storage.create_user(
        db,
        email=email,
        display_name=name,
        password_hash=hash_password(DEMO_PASSWORD),
        role=role,
        now=moment,
    )
    return {"id": user_id, "email": email, "role": role, "created": True}


def _slot(moment: datetime, today) -> datetime:
    """The next quarter hour, kept on today's date so every demo visit is on the board."""
    rounded = moment.replace(second=0, microsecond=0) + timedelta(
        minutes=(-moment.minute) % 15 or 15
    )
    if rounded.date() != today:
        return datetime.combine(today, time(23, 45) if rounded.date() > today else time(0, 0))
    return rounded


class _Demo:
    """Writes the demo visits through the same storage calls the patient pages make."""

    def __init__(self, db, users: dict, moment: datetime):
        self.db, self.moment = db, moment
        self.desk, self.doctor = users["frontdesk"]["id"], users["psychiatrist"]["id"]
        self.extra_days = int(clinic_settings()["invite_extra_days"])
        self.questionnaire = questionnaire.default()

    def invite(
        self, ref: str, appointment: datetime, created: datetime, language: str = ""
    ) -> invitations.Invitation:
        return visits.create(
            self.db,
            patient_ref=ref,
            appointment_at=appointment,
            psychiatrist_id=self.doctor,
            suggested_language=language,
            extra_days=self.extra_days,
            created_by=self.desk,
            now=created,
        )

    def answer(
        self,
        visit_id: int,
        answers: dict,
        started: datetime,
        minutes: int,
        sections: int,
        language: str,
    ) -> None:
        """Start the visit and save `sections` sections, spread over `minutes`."""
        q = self.questionnaire
        visits.start(self.db, visit_id, language=language, version=q.version, now=started)
        gap = timedelta(minutes=minutes) / (len(q.sections) + 1)
        for number, section in enumerate(q.sections[:sections], start=1):
            values = {item.id: answers.get(item.id) for item in section.items}
            visits.save_step(
                self.db,
                visit_id,
                values,
                step=number,
                next_step=number + 1,
                now=started + gap * number,
            )

    def submitted(
        self,
        ref: str,
        answers: dict,
        sent: datetime,
        minutes: int,
        language: str = "en",
        in_person: frozenset = frozenset(),
        day=None,
    ) -> int:
        """A visit answered in full and sent `minutes` after it was started, with its
        appointment on `day` (default today)."""
        started = sent - timedelta(minutes=minutes)
        appointment = _slot(sent + timedelta(minutes=10), day or self.moment.date())
        suggested = "" if language == "en" else language
        visit_id = self.invite(
            ref, appointment, started - timedelta(minutes=12), suggested
        ).visit_id
        self.answer(visit_id, answers, started, minutes, len(self.questionnaire.sections), language)
        visits.submit(self.db, visit_id, set(in_person), sent)
        return visit_id

    def follow_up(self) -> list[int]:
        """A patient seen about four weeks ago, so the summary shows what changed."""
        sent = self.moment - timedelta(minutes=22)
        before = sent - timedelta(days=28)
        first = self.submitted("RB-1187", FOLLOW_UP_BEFORE, before, 6, day=before.date())
        visits.mark_reviewed(self.db, first, self.doctor, before + timedelta(minutes=25))
        return [first, self.submitted("RB-1187", FOLLOW_UP_NOW, sent, 8)]

    def open_visits(self) -> tuple[invitations.Invitation, int]:
        """One invitation not opened yet, one patient on step 3 right now."""
        today = self.moment.date()
        waiting = self.invite(
            "A-2063",
            _slot(self.moment + timedelta(minutes=60), today),
            self.moment - timedelta(minutes=5),
        )
        started = self.moment - timedelta(minutes=3)
        busy = self.invite(
            "KT-0412",
            _slot(self.moment + timedelta(minutes=15), today),
            started - timedelta(minutes=10),
        ).visit_id
        self.answer(busy, IN_PROGRESS, started, 4, 2, "en")
        return waiting, busy

    def ago(self, minutes: int) -> datetime:
        return self.moment - timedelta(minutes=minutes)

    def all(self) -> tuple[list[int], invitations.Invitation]:
        """Every demo visit; returns their ids and the invitation nobody opened yet."""
        ago = self.ago
        ids = [
            self.submitted("A-2041", SAFETY_CONCERN, ago(8), 6),
            self.submitted("A-2057", AMBIVALENT, ago(35), 7),
            *self.follow_up(),
            self.submitted("A-2079", SPANISH, ago(50), 9, language="es"),
            self.submitted(
                "A-2085", IN_PERSON, ago(15), 5, in_person=frozenset({"P1", "F2", "H1"})
            ),
        ]
        waiting, busy = self.open_visits()
        return [*ids, waiting.visit_id, busy], waiting


@click.command("demo")
@click.option("--force", is_flag=True, help="Add the demo data even if visits exist.")
@with_appcontext
def demo_command(force: bool) -> None:
    """Fill a fresh database with fictional accounts and today's visits, to try the app."""
    db = get_db()
    if storage.count_visits(db) and not force:
        _fail(
            "this database already has visits. The demo is meant for a fresh database; "
            "add --force to add the demo data anyway."
        )
    moment = now()
    users = {role: _ensure_user(db, role, email, name, moment) for role, email, name in DEMO_USERS}
    visit_ids, waiting = _Demo(db, users, moment).all()
    _audit("demo_data", detail=f"{len(visit_ids)} visits")
    _print_demo(users, waiting)


def _print_demo(users: dict, waiting: invitations.Invitation) -> None:
    from .cli import base_url

    click.echo(f"Demo data added: fictional visits for today, {now():%Y-%m-%d}.")
    click.echo(f"Sign in at {base_url()}/staff/login as:")
    for account in users.values():
        note = "" if account["created"] else "  (already existed: password unchanged)"
        click.echo(f"  {account['role']:<13} {account['email']}{note}")
    click.echo(f"Password for the demo accounts: {DEMO_PASSWORD}")
    click.echo(f"To try the patient side, open {base_url()}/v/{waiting.token}")
    click.echo(
        "WARNING: for demonstration only. These accounts and their published password "
        "must never hold real patients; deactivate them before going live."
    )


def init_app(app) -> None:
    """Register the operations commands on the app's CLI."""
    for command in (create_user_command, backup_command, purge_command, demo_command):
        app.cli.add_command(command)
