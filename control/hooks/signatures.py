"""Is this request from the provider? Each provider's proof, checked in constant time.

- GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body under the secret>``.
- GitLab: ``X-Gitlab-Token`` is the secret itself (GitLab signs nothing).
- Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (see
  :mod:`control.standard_webhooks`).

Each returns the delivery's id, which the API never acts on twice: GitHub's
``X-GitHub-Delivery``, GitLab's ``Idempotency-Key`` (or ``X-Gitlab-Webhook-UUID``, ``X-Gitlab-Event-UUID``,
from an older GitLab a hash of the body), the Standard ``webhook-id``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from control import standard_webhooks


class Refused(Exception):
    """Not proven to come from the provider; one sentence without the secret."""


def github(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    offered = headers.get("x-hub-signature-256", "")
    if not offered:
        raise Refused("The request has no X-Hub-Signature-256 header; set the webhook's secret on GitHub.")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(offered.encode(), expected.encode()):
        raise Refused("X-Hub-Signature-256 does not match the body and the project's secret.")
    return headers.get("x-github-delivery", "") or _digest(body)


def gitlab(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    offered = headers.get("x-gitlab-token", "")
    if not offered:
        raise Refused("The request has no X-Gitlab-Token header; set the webhook's secret token on GitLab.")
    if not hmac.compare_digest(offered.encode(), secret.encode()):
        raise Refused("X-Gitlab-Token is not the project's secret.")
    # Idempotency-Key (GitLab 17.4+) stays the same when GitLab retries a delivery.
    return (
        headers.get("idempotency-key", "")
        or headers.get("x-gitlab-webhook-uuid", "")
        or headers.get("x-gitlab-event-uuid", "")
        or _digest(body)
    )


def standard(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    try:
        return standard_webhooks.verify(secret, headers, body)
    except standard_webhooks.SignatureRefused as exc:
        raise Refused(str(exc)) from None


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


VERIFY = {"github": github, "gitlab": gitlab, "standard": standard}
