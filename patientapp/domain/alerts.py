"""The rules of a safety alert after it is raised: when it is escalated, how long it took
to acknowledge, when the next e-mail try may start, and when a worse answer opens it
again. Pure functions, the time passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from patientapp.domain.records import Alert, SafetyAnswer
from patientapp.summary.rules import safety_severity

# Seconds to wait after a failed e-mail try before the next: 1 min, 2, 5, 10, then every
# 15 minutes for as long as the alert stays escalated and unacknowledged.
MAIL_BACKOFF = (60, 120, 300, 600, 900)


def is_escalated(alert: Alert | None, now: datetime, minutes: int) -> bool:
    """Unacknowledged `minutes` after it was raised (or already marked escalated)."""
    if alert is None or alert.acknowledged_at is not None:
        return False
    return alert.escalated_at is not None or now - alert.created_at >= timedelta(minutes=minutes)


def escalates_at(alert: Alert, minutes: int) -> datetime:
    return alert.created_at + timedelta(minutes=minutes)


def minutes_to_acknowledge(alert: Alert) -> float | None:
    """Minutes from the alert to its acknowledgement (None while it is open)."""
    if alert.acknowledged_at is None:
        return None
    return max(0.0, (alert.acknowledged_at - alert.created_at).total_seconds() / 60)


def next_mail_try(attempts: int, now: datetime) -> datetime:
    """When the try after `attempts` failed ones may start."""
    step = min(max(attempts, 1), len(MAIL_BACKOFF)) - 1
    return now + timedelta(seconds=MAIL_BACKOFF[step])


def reopens(alert: Alert | None, history: Sequence[SafetyAnswer]) -> bool:
    """Whether the answer just saved, the last of `history` (call it only when the save
    added it: the same answer saved again adds nothing, and is nothing new to see), opens
    an acknowledged alert again: it is worse than
    every answer saved up to the acknowledgement ("several days" acknowledged, then
    "nearly every day"). Whoever acknowledged checked on the answers they could see; a
    worse one is news the front desk must get as a new alert. The same or a milder
    answer again is not."""
    if alert is None or alert.acknowledged_at is None or not history:
        return False
    covered = [a for a in history[:-1] if a.saved_at <= alert.acknowledged_at]
    worst = max((safety_severity(a.value) for a in covered), default=0)
    return safety_severity(history[-1].value) > worst
