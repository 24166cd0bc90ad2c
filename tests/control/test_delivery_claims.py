"""Deliveries are taken by one API process at a time: two delivery loops on one database never
claim the same delivery, and one left `sending` by a process that died is taken again when its
lease runs out (at least once, never twice at the same time)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from control.api.services import Services
from control.bootstrap import local_admin_token, prepare_database
from control.clock import utcnow
from control.db.tables import Delivery, Project, User
from control.notifications.dispatcher import claim_due
from control.settings import load_settings


@pytest.fixture
def services(tmp_path: Path, database_url: str) -> Iterator[Services]:
    """The API's services on a fresh database, with no API (and so no delivery loop) running:
    the test plays the loops."""
    settings = load_settings(tmp_path / "data", database_url=database_url)
    built = Services.from_settings(settings)
    prepare_database(built.engine)
    local_admin_token(built.engine, "admin", None)
    try:
        yield built
    finally:
        built.hub.close()
        built.engine.dispose()


def _deliveries(services: Services, count: int, **fields: object) -> list[int]:
    with Session(services.engine) as session:
        owner = session.exec(select(User)).first()
        assert owner is not None and owner.id is not None
        project = Project(name=f"p{utcnow().timestamp()}".replace(".", ""), owner_id=owner.id)
        session.add(project)
        session.flush()
        assert project.id is not None
        rows = [
            Delivery(project_id=project.id, channel="webhook", target="x", event="failed", **fields)  # type: ignore[arg-type]
            for _ in range(count)
        ]
        session.add_all(rows)
        session.commit()
        return [r.id for r in rows if r.id is not None]


def test_two_loops_never_claim_one_delivery(services: Services) -> None:
    ids = _deliveries(services, 60)
    claimed: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def loop(slot: int) -> None:
        # One delivery per claim, until none is left: 60 transactions each way interleave, where
        # a batch of 5 let one loop take everything before the other one's first query.
        start.wait()
        for _ in range(200):
            got = claim_due(services, limit=1)
            if not got and len(claimed[0]) + len(claimed[1]) >= len(ids):
                return
            claimed[slot] += got

    threads = [threading.Thread(target=loop, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    mine = claimed[0] + claimed[1]
    assert sorted(mine) == sorted(ids), "every delivery is claimed, and only once"
    assert claimed[0] and claimed[1], "both loops took some"
    with Session(services.engine) as session:
        states = {d.id: d.state for d in session.exec(select(Delivery))}
    assert all(states[i] == "sending" for i in mine)


def test_a_lease_that_ran_out_is_taken_again(services: Services) -> None:
    now = utcnow()
    expired = _deliveries(services, 1, state="sending", lease_until=now - timedelta(seconds=5))
    _deliveries(services, 1, state="sending", lease_until=now + timedelta(hours=1))  # still held: not taken
    assert claim_due(services) == expired  # at least once: the dead process's attempt is made again
