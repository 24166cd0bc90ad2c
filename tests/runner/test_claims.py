"""Claiming is atomic: many agents racing over one queue never get the same work item."""

from __future__ import annotations

import threading
from collections import Counter

from sqlmodel import Session, select

from control.db.engine import make_engine
from control.db.migrate import upgrade
from control.db.tables import Agent, Project, Run, User, WorkItem
from control.runs.claims import claim
from control.runs.create import RunRequest, create_run

ITEMS = 120
AGENTS = 6


def test_racing_agents_claim_each_item_once(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as session:
        user = User(name="owner", role="admin")
        session.add(user)
        session.flush()
        assert user.id is not None
        project = Project(name="race", owner_id=user.id)
        session.add(project)
        agents = [Agent(name=f"agent-{i}") for i in range(AGENTS)]
        session.add_all(agents)
        session.flush()
        for i in range(ITEMS):
            create_run(
                session, RunRequest(project=project, environment=None, user_id=user.id, command=["echo", str(i)])
            )
        session.commit()
        agent_ids = [a.id for a in agents]

    claimed: Counter[int] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(agent_id: int) -> None:
        try:
            while True:
                with Session(engine, expire_on_commit=False) as session:
                    got = claim(session, agent_id, ["default"], max_items=3, global_limit=None)
                if not got:
                    return
                with lock:
                    claimed.update(c.item.id for c in got if c.item.id is not None)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(a,)) for a in agent_ids if a is not None]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(claimed) == ITEMS and set(claimed.values()) == {1}
    with Session(engine) as session:
        states = Counter(r.state for r in session.exec(select(Run)))
        assert states == {"starting": ITEMS}
        assert all(w.state == "claimed" for w in session.exec(select(WorkItem)))
    engine.dispose()


def test_global_limit_holds_the_queue_in_order(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as session:
        user = User(name="owner", role="admin")
        session.add(user)
        session.flush()
        assert user.id is not None
        project = Project(name="p", owner_id=user.id)
        agent = Agent(name="a")
        session.add_all([project, agent])
        session.flush()
        runs = [
            create_run(session, RunRequest(project=project, environment=None, user_id=user.id, command=["true"]))[0]
            for _ in range(5)
        ]
        session.commit()
        assert agent.id is not None
        first = claim(session, agent.id, ["default"], max_items=10, global_limit=2)
        assert [c.run.id for c in first if c.run] == [runs[0].id, runs[1].id]
        assert claim(session, agent.id, ["default"], max_items=10, global_limit=2) == []
    engine.dispose()
