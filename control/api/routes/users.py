"""Users (admins manage them; every reader may list them) and the caller's own identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from control import audit
from control.api import paging
from control.api.deps import DB, Admin, Caller, Reader, Svc
from control.api.errors import conflict, not_found
from control.api.routing import SegmentRouter
from control.api.tokens_issue import issue_token
from control.db.tables import User
from control.sso import sessions
from control.wire.errors import ApiError
from control.wire.events import UserRef
from control.wire.resources import Me, Page, Role, UserCreate, UserCreated, UserOut, UserUpdate

router = SegmentRouter(tags=["users"])


def user_out(user: User) -> UserOut:
    assert user.id is not None
    return UserOut(
        id=user.id,
        name=user.name,
        email=user.email,
        role=Role(user.role),
        disabled=user.disabled,
        created_at=user.created_at,
        sso_subject=user.sso_subject,
    )


def _subject_taken(session: Session, subject: str) -> bool:
    return session.exec(select(User.id).where(User.sso_subject == subject)).first() is not None


def find_user(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise not_found("User", name)
    return user


@router.get("/me", response_model=Me)
def me(who: Caller, session: DB) -> Me:
    """The user behind the token (any role, agents included)."""
    user = session.get(User, who.user_id)
    assert user is not None
    return Me(**user_out(user).model_dump(), token_id=who.token_id)


@router.get("/users", response_model=Page[UserOut])
def list_users(
    session: DB, _: Reader, params: Annotated[paging.PageParams, Depends(paging.page_params)]
) -> dict[str, object]:
    rows = list(session.exec(paging.apply(select(User), User.id, params)))
    return paging.build(rows, params, user_out)


@router.get("/users/{name}", response_model=UserOut)
def get_user(name: str, session: DB, _: Reader) -> UserOut:
    return user_out(find_user(session, name))


@router.post("/users", response_model=UserCreated, status_code=201)
def create_user(body: UserCreate, session: DB, who: Admin, svc: Svc) -> UserCreated:
    user = User(name=body.name, email=body.email, role=body.role.value, sso_subject=body.sso_subject)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        if body.sso_subject is not None and _subject_taken(session, body.sso_subject):
            raise conflict(f"Another user is already linked to subject {body.sso_subject}.") from None
        raise conflict(f"User {body.name} already exists.") from None
    secret = None
    if body.issue_token:
        _, secret = issue_token(session, user, "initial", expires_in_days=svc.settings.token_ttl_days)
    audit.record(session, who, "user.create", "user", user.id, name=user.name, role=user.role)
    session.commit()
    svc.events.publish("user.created", UserRef(id=user.id, name=user.name, role=user.role))
    return UserCreated(**user_out(user).model_dump(), token=secret)


@router.patch("/users/{name}", response_model=UserOut)
def update_user(name: str, body: UserUpdate, session: DB, who: Admin, svc: Svc) -> UserOut:
    user = find_user(session, name)
    changes = body.model_dump(exclude_unset=True)
    if user.id == who.user_id and (changes.get("disabled") or changes.get("role", Role.admin) != Role.admin):
        raise ApiError(409, "conflict", "You cannot demote or disable yourself; ask another admin.")
    for key, value in changes.items():
        setattr(user, key, value.value if isinstance(value, Role) else value)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # the only unique column a change can hit
        session.rollback()
        raise conflict(f"Another user is already linked to subject {changes.get('sso_subject')}.") from None
    if changes.get("disabled") or "sso_subject" in changes:
        # Sign-in sessions end for good (a new link: the old identity's too); API tokens are
        # only refused while the user is disabled.
        assert user.id is not None
        ended = sessions.revoke_all(session, user.id)
        if ended:
            audit.record(session, who, "token.revoke", "user", user.id, name=user.name, sso_sessions=ended)
    audit.record(
        session, who, "user.update", "user", user.id, name=user.name, **{k: str(v) for k, v in changes.items()}
    )
    session.commit()
    svc.principals.clear()
    svc.events.publish("user.updated", UserRef(id=user.id, name=user.name))
    return user_out(user)
