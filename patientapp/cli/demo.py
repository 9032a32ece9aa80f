"""flask demo: fictional accounts and today's visits in a fresh database, to try the app.

The visits are written through the same storage calls the patient pages make."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext

from patientapp.cli import examples
from patientapp.cli.common import audit, fail
from patientapp.db import storage
from patientapp.domain import invitations, visits
from patientapp.domain.accounts import create_account
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import base_url, clinic_settings, get_db, now

DEMO_PASSWORD = "tulip-harbor-2026"  # noqa: S105 - printed by the command and in the README: demo only
DEMO_USERS = (
    ("admin", "demo-admin@example.org", "Demo Admin"),
    ("psychiatrist", "dr.rivera@example.org", "Dr. Ana Rivera"),
    ("frontdesk", "desk@example.org", "Sam Okafor"),
)


def _ensure_user(db, role: str, email: str, name: str) -> dict:
    existing = storage.user_by_email(db, email)
    if existing is not None:
        return {"id": existing["id"], "email": email, "role": role, "created": False}
    user_id = create_account(
        db, email=email, password=DEMO_PASSWORD, role=role, display_name=name, now=now()
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


def _measured(first: str, rest: str) -> dict:
    """Answers to every standard measure's own items: the first three `first`, the others
    `rest` (S1, PHQ-9's item 9, is the visit's own answer)."""
    items = [i for i in questionnaire.default().items.values() if i.instrument]
    return {item.id: first if item.id[-1] in "123" else rest for item in items}


class _Demo:
    """Writes the demo visits through the same storage calls the patient pages make."""

    def __init__(self, db, users: dict, moment: datetime):
        self.db, self.moment = db, moment
        self.desk, self.doctor = users["frontdesk"]["id"], users["psychiatrist"]["id"]
        self.extra_days = int(clinic_settings()["invite_extra_days"])
        self.questionnaire = questionnaire.default()

    def invite(
        self,
        ref: str,
        appointment: datetime,
        created: datetime,
        language: str = "",
        measures: tuple[str, ...] = (),
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
            measures=measures,
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
        steps = examples.by_step(answers, q)
        for number in range(1, sections + 1):
            visits.save_step(
                self.db,
                visit_id,
                steps[number],
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
        measures: tuple[str, ...] = (),
    ) -> int:
        """A visit answered in full and sent `minutes` after it was started, with its
        appointment on `day` (default today)."""
        started = sent - timedelta(minutes=minutes)
        appointment = _slot(sent + timedelta(minutes=10), day or self.moment.date())
        suggested = "" if language == "en" else language
        visit_id = self.invite(
            ref, appointment, started - timedelta(minutes=12), suggested, measures
        ).visit_id
        self.answer(visit_id, answers, started, minutes, len(self.questionnaire.sections), language)
        visits.submit(self.db, visit_id, set(in_person), sent)
        return visit_id

    def follow_up(self) -> list[int]:
        """A patient seen about four weeks ago, so the summary shows what changed; both
        visits with PHQ-9 and GAD-7, so the Measures line shows their trend."""
        sent = self.moment - timedelta(minutes=22)
        before = sent - timedelta(days=28)
        both = ("gad7", "phq9")
        first = self.submitted(
            "RB-1187",
            {**examples.FOLLOW_UP_BEFORE, **_measured("more_than_half", "several_days")},
            before,
            8,
            day=before.date(),
            measures=both,
        )
        visits.mark_reviewed(self.db, first, self.doctor, before + timedelta(minutes=25))
        now_answers = {**examples.FOLLOW_UP_NOW, **_measured("several_days", "not_at_all")}
        return [first, self.submitted("RB-1187", now_answers, sent, 9, measures=both)]

    def open_visits(self) -> tuple[invitations.Invitation, int]:
        """One invitation not opened yet, one patient on step 3 right now."""
        today = self.moment.date()
        waiting = self.invite(
            "A-2063",
            _slot(self.moment + timedelta(minutes=60), today),
            self.moment - timedelta(minutes=5),
            measures=("gad7", "phq9"),
        )
        started = self.moment - timedelta(minutes=3)
        busy = self.invite(
            "KT-0412",
            _slot(self.moment + timedelta(minutes=15), today),
            started - timedelta(minutes=10),
        ).visit_id
        self.answer(busy, examples.IN_PROGRESS, started, 4, 2, "en")
        return waiting, busy

    def ago(self, minutes: int) -> datetime:
        return self.moment - timedelta(minutes=minutes)

    def all(self) -> tuple[list[int], invitations.Invitation]:
        """Every demo visit; returns their ids and the invitation nobody opened yet."""
        ago = self.ago
        ids = [
            self.submitted("A-2041", examples.SAFETY_CONCERN, ago(8), 6),
            self.submitted("A-2057", examples.AMBIVALENT, ago(35), 7),
            *self.follow_up(),
            self.submitted("A-2079", examples.SPANISH, ago(50), 9, language="es"),
            self.submitted(
                "A-2085", examples.IN_PERSON, ago(15), 5, in_person=frozenset({"P1", "F2", "H1"})
            ),
            # Not taking medicine now: the medicine questions read "not asked".
            self.submitted("A-2092", examples.NOT_TAKING, ago(27), 5),
        ]
        waiting, busy = self.open_visits()
        return [*ids, waiting.visit_id, busy], waiting


@click.command("demo")
@click.option("--force", is_flag=True, help="Add the demo data even if visits exist.")
@with_appcontext
def demo_command(force: bool) -> None:
    """Fill a fresh database with fictional accounts and today's visits, to try the app."""
    db = get_db()
    demo_emails = {email for _role, email, _name in DEMO_USERS}
    clinic_accounts = [u for u in storage.list_users(db) if u["email"].lower() not in demo_emails]
    if clinic_accounts:
        fail(
            f"this database ({current_app.config['DATABASE']}) has staff accounts of its "
            "own, so it may hold a clinic's patients: the demo's accounts, with their "
            "published password, are never added to it. Try the demo in a folder of its "
            "own: `make demo` (demo-instance/), or set PATIENTAPP_INSTANCE to an empty folder."
        )
    if storage.count_visits(db) and not force:
        fail(
            "this database already has visits. The demo is meant for a fresh database; "
            "add --force to add the demo data anyway."
        )
    moment = now()
    with storage.write(db):  # every account, visit and the entry, or none of them
        users = {role: _ensure_user(db, role, email, name) for role, email, name in DEMO_USERS}
        visit_ids, waiting = _Demo(db, users, moment).all()
        audit("demo_data", detail=f"{len(visit_ids)} visits")
    _print_demo(users, waiting)


def _print_demo(users: dict, waiting: invitations.Invitation) -> None:
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
