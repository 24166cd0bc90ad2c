"""Cron expressions evaluated in an IANA timezone, correct across daylight-saving changes.

Cron is wall-clock time: ``30 2 * * *`` means "at 02:30 on the local clock". We iterate in naive
local time (croniter) and convert each result to UTC:

- a local time that does not exist (the spring-forward gap) is taken with the offset before the
  change, so 02:30 becomes 03:30 local: the tick fires late instead of being lost;
- a local time that happens twice (fall-back) is taken once, at its first occurrence;
- two local times that land on the same UTC instant (an hourly job in the gap) are one tick.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


class ScheduleInvalid(ValueError):
    """An invalid cron expression or timezone; one sentence for the user."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleInvalid(f"Unknown timezone '{name}'; use an IANA name such as UTC or Europe/Berlin.") from None


def validate(expression: str) -> str:
    expression = " ".join(expression.split())
    if not expression or not croniter.is_valid(expression):
        raise ScheduleInvalid(
            f"'{expression}' is not a valid cron expression (five fields: minute hour day month weekday)."
        )
    if len(expression.split()) != 5:
        raise ScheduleInvalid(f"'{expression}' must have exactly five fields: minute hour day month weekday.")
    return expression


def _to_utc(local_naive: datetime, tz: ZoneInfo) -> datetime:
    return local_naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def fire_times(expression: str, tz_name: str, after: datetime) -> Iterator[datetime]:
    """UTC fire times strictly after ``after`` (aware), in order, without duplicates."""
    tz = zone(tz_name)
    # Start an hour early in local time so a gap or fold right at ``after`` is not skipped;
    # results at or before ``after`` are filtered out below. Only needed when the UTC offset
    # changed within that hour: otherwise the skipped hour holds nothing after ``after``.
    local_after = after.astimezone(tz)
    lookback = timedelta(hours=1)
    if (after - lookback).astimezone(tz).utcoffset() == local_after.utcoffset():
        lookback = timedelta(0)
    start_local = (local_after - lookback).replace(tzinfo=None)
    iterator = croniter(expression, start_local)
    last: datetime | None = None
    while True:
        local = iterator.get_next(datetime)
        fire = _to_utc(local, tz)
        if fire <= after or (last is not None and fire <= last):
            continue
        last = fire
        yield fire


def next_times(expression: str, tz_name: str, after: datetime, count: int) -> list[datetime]:
    times = fire_times(expression, tz_name, after)
    return [next(times) for _ in range(count)]


def due_between(
    expression: str, tz_name: str, after: datetime, until: datetime, limit: int
) -> tuple[list[datetime], int]:
    """Fire times in ``(after, until]``: the latest ``limit`` of them and how many were dropped."""
    due: list[datetime] = []
    dropped = 0
    for fire in fire_times(expression, tz_name, after):
        if fire > until:
            break
        due.append(fire)
        if len(due) > limit:
            due.pop(0)
            dropped += 1
    return due, dropped
