"""Who a signed-in identity is in devyard: the user it maps to, and the role its groups give.

Matching (``oidc_match``): ``subject`` finds the user linked to the provider's ``sub``; ``email``
does too, and otherwise finds the unlinked user with that address and links it, so later
sign-ins follow the subject even when the address changes. An address the provider says is not
verified (``email_verified: false``) matches nobody. A user already linked to another subject is
never taken over by an address.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from control import audit
from control.db.tables import User
from control.settings import Settings
from control.sso.problem import SsoProblem
from control.wire.errors import ACCESS_DENIED, USER_DISABLED
from control.wire.resources import Role

RANK = {"viewer": 1, "developer": 2, "admin": 3}


def user_for(session: Session, settings: Settings, claims: dict[str, Any]) -> User:
    """The devyard user of these verified claims, created or updated as the settings say (the
    caller commits). SsoProblem(access_denied | user_disabled) when nobody may sign in."""
    subject = str(claims["sub"])
    email = _verified_email(claims)
    user = session.exec(select(User).where(User.sso_subject == subject)).first()
    if user is None and settings.oidc_match == "email" and email:
        user = session.exec(select(User).where(func.lower(User.email) == email.lower())).first()
        if user is not None and user.sso_subject not in (None, subject):
            raise SsoProblem(
                ACCESS_DENIED, f"The devyard user with {email} is linked to another identity; ask an admin.", 403
            )
    role = _mapped_role(settings, claims)
    if user is None:
        if not settings.oidc_auto_create:
            who = email or subject
            raise SsoProblem(
                ACCESS_DENIED, f"No devyard user matches {who}; ask an admin to add you (`yard users add`).", 403
            )
        return _create(session, role or settings.oidc_default_role, subject, email, claims)
    if user.disabled:
        raise SsoProblem(USER_DISABLED, f"User {user.name} is disabled.", 403)
    if user.role == Role.agent.value:
        raise SsoProblem(ACCESS_DENIED, f"{user.name} is an agent account; agents sign in with tokens.", 403)
    changes: dict[str, str] = {}
    if user.sso_subject is None:
        user.sso_subject = subject
        changes["sso_subject"] = subject
    if settings.oidc_group_roles:
        new_role = role or settings.oidc_default_role
        if new_role == "none":
            raise SsoProblem(ACCESS_DENIED, "None of your groups gives access to this devyard; ask an admin.", 403)
        if new_role != user.role:
            user.role = changes["role"] = new_role
    if changes:
        session.add(user)
        audit.record(session, None, "user.update", "user", user.id, name=user.name, by="sso", **changes)
    return user


def _verified_email(claims: dict[str, Any]) -> str | None:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or claims.get("email_verified") is False:
        return None
    return email


def _mapped_role(settings: Settings, claims: dict[str, Any]) -> str | None:
    """The highest role any of the person's groups maps to; None when no group is mapped."""
    groups = claims.get(settings.oidc_groups_claim) or []
    if isinstance(groups, str):
        groups = groups.split()
    roles = [settings.oidc_group_roles[g] for g in groups if isinstance(g, str) and g in settings.oidc_group_roles]
    return max(roles, key=RANK.__getitem__) if roles else None


def _create(session: Session, role: str, subject: str, email: str | None, claims: dict[str, Any]) -> User:
    if role == "none":
        raise SsoProblem(ACCESS_DENIED, "None of your groups gives access to this devyard; ask an admin.", 403)
    user = User(name=_free_name(session, claims, email, subject), email=email, role=role, sso_subject=subject)
    session.add(user)
    session.flush()
    audit.record(session, None, "user.create", "user", user.id, name=user.name, role=role, by="sso")
    return user


def _free_name(session: Session, claims: dict[str, Any], email: str | None, subject: str) -> str:
    """A user name from the identity (preferred_username, the address's local part or the
    subject) in devyard's name alphabet, with a number added until it is free."""
    raw = claims.get("preferred_username") or (email.split("@")[0] if email else subject)
    base = re.sub(r"[^a-z0-9._-]+", "-", str(raw).lower()).strip("-._")[:56] or "user"
    name, n = base, 1
    while session.exec(select(User.id).where(User.name == name)).first() is not None:
        n += 1
        name = f"{base}-{n}"
    return name
