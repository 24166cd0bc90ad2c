"""What the benchmarks share: percentiles, summaries, and a scratch PostgreSQL database."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def summary(values: Sequence[float], digits: int = 1, with_min: bool = False) -> dict[str, float | int]:
    """n, p50, p90, p99, max and mean (and min) of ``values``, rounded."""
    ordered = sorted(values)
    out: dict[str, float | int] = {"n": len(ordered)}
    if with_min:
        out["min"] = round(ordered[0], digits) if ordered else 0.0
    out.update(
        p50=round(percentile(ordered, 50), digits),
        p90=round(percentile(ordered, 90), digits),
        p99=round(percentile(ordered, 99), digits),
        max=round(ordered[-1], digits) if ordered else 0.0,
        mean=round(statistics.fmean(ordered), digits) if ordered else 0.0,
    )
    return out


def reachable_postgres(candidates: list[tuple[str, float]]) -> tuple[str | None, str]:
    """The first URL that answers ``SELECT 1`` (retrying each for its wait), or None and why not."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from control.db.engine import normalize_url, redact

    reasons = []
    for url, wait_s in candidates:
        deadline = time.monotonic() + wait_s
        while True:
            engine = create_engine(normalize_url(url), poolclass=NullPool, connect_args={"connect_timeout": 3})
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return url, ""
            except Exception as exc:  # any driver or network failure means "not usable"
                reason = f"{redact(normalize_url(url))}: {str(exc).strip().splitlines()[0][:200]}"
            finally:
                engine.dispose()
            if time.monotonic() >= deadline:
                reasons.append(reason)
                break
            time.sleep(1)
    return None, "; ".join(reasons) or "no PostgreSQL URL given"


@contextmanager
def scratch_postgres(admin_url: str, prefix: str = "devyard_bench") -> Iterator[str]:
    """A fresh database ``<prefix>_<pid>`` next to ``admin_url``'s, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from control.db.engine import normalize_url

    name = f"{prefix}_{os.getpid()}"
    admin = create_engine(normalize_url(admin_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
