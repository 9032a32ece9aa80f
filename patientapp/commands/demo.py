"""flask demo: fictional accounts and today's visits in a fresh database, to try the app.

The visits are written through the same storage calls the patient pages make."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import click
from flask.cli import with_appcontext

from .. import invitations, questionnaire, storage
from ..auth import create_account
from ..summary import safety_status
from ..web import base_url, clinic_settings, get_db, now
from .common import audit, fail

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


def _ensure_user(db, role: str, email: str, name: str) -> dict:
    existing = storage.user_by_email(db, email)
    if existing is not None:
        return {"id": existing["id"], "email": email, "role": role, "created": False}
    user_id = create_account(db, email=email, password=DEMO_PASSWORD, role=role, display_name=name)
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
        return invitations.create(
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
        storage.start_visit(self.db, visit_id, language=language, version=q.version, now=started)
        gap = timedelta(minutes=minutes) / (len(q.sections) + 1)
        for number, section in enumerate(q.sections[:sections], start=1):
            values = {item.id: answers.get(item.id) for item in section.items}
            safety = safety_status(values, reached=True) if "S1" in values else None
            storage.save_step(
                self.db,
                visit_id,
                values,
                step=number,
                next_step=number + 1,
                now=started + gap * number,
                safety=safety,
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
        storage.submit_visit(self.db, visit_id, set(in_person), sent)
        return visit_id

    def follow_up(self) -> list[int]:
        """A patient seen about four weeks ago, so the summary shows what changed."""
        sent = self.moment - timedelta(minutes=22)
        before = sent - timedelta(days=28)
        first = self.submitted("RB-1187", FOLLOW_UP_BEFORE, before, 6, day=before.date())
        storage.mark_reviewed(self.db, first, self.doctor, before + timedelta(minutes=25))
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
        fail(
            "this database already has visits. The demo is meant for a fresh database; "
            "add --force to add the demo data anyway."
        )
    moment = now()
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
