"""Sending one message on one channel: Slack incoming webhooks, signed webhooks (Standard
Webhooks), e-mail over SMTP. Each returns an :class:`Answer`; none raises for a receiver's fault.

A receiver that is down, slow past the timeout, or answering 5xx/408/429 gets the message again
later (``retry``); any other refusal (a 4xx, an SMTP 5xx: a revoked Slack URL, an unknown
mailbox) is final, since sending the same thing again cannot succeed.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import httpx

from control import standard_webhooks
from control.notifications.message import RunReport
from control.settings import Settings

ANSWER_CHARS = 500
RETRY_STATUSES = frozenset({408, 425, 429})
SLACK_TEXT_LIMIT = 2900  # Slack refuses a section text over 3000 characters


@dataclass(frozen=True)
class Answer:
    ok: bool
    status_code: int | None
    answer: str
    retry: bool = False
    """Worth trying again later (the receiver was down, slow or overloaded)."""


def http_answer(response: httpx.Response) -> Answer:
    text = response.text[:ANSWER_CHARS]
    if response.is_success:
        return Answer(True, response.status_code, text)
    retry = response.status_code >= 500 or response.status_code in RETRY_STATUSES
    return Answer(False, response.status_code, text or response.reason_phrase, retry=retry)


def unreachable(exc: Exception, timeout_s: float) -> Answer:
    """Why a request got no answer, in words (never the URL: it may hold the credential)."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return Answer(False, None, f"No answer within {timeout_s:g} s.", retry=True)
    if isinstance(exc, httpx.ConnectError | ConnectionError):
        return Answer(False, None, "The connection was refused or could not be made.", retry=True)
    return Answer(False, None, f"The request failed ({type(exc).__name__}).", retry=True)


async def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            # httpx's timeout is per operation; a receiver trickling its answer is bounded too.
            response = await asyncio.wait_for(
                client.post(url, content=body, headers={"content-type": "application/json", **headers}), timeout_s
            )
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        return unreachable(exc, timeout_s)
    return http_answer(response)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(report: RunReport) -> dict[str, object]:
    """An incoming-webhook message: ``text`` for notifications and clients without blocks."""
    details = "\n".join(_slack_escape(line) for line in report.lines()[1:])
    blocks: list[dict[str, object]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(report.headline)}*\n{details}"}},
    ]
    if report.log_tail:
        tail = "\n".join(report.log_tail).replace("```", "` ` `")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{tail[-SLACK_TEXT_LIMIT:]}```"}})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"`{report.logs_command}` · <{report.url}|run {report.run_id}>"}],
        }
    )
    return {"text": report.headline, "blocks": blocks}


async def send_slack(url: str, report: RunReport, timeout_s: float) -> Answer:
    return await post_json(url, json.dumps(slack_body(report)).encode(), {}, timeout_s)


def webhook_body(report: RunReport, event_type: str) -> bytes:
    """The Standard Webhooks payload: ``{"type", "timestamp", "data"}``."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps({"type": event_type, "timestamp": now, "data": report.as_json()}).encode()


async def send_webhook(
    url: str, secret: str, message_id: str, report: RunReport, timeout_s: float, event_type: str = "run.finished"
) -> Answer:
    body = webhook_body(report, event_type)
    return await post_json(url, body, standard_webhooks.headers(secret, message_id, body), timeout_s)


def email_message(report: RunReport, sender: str, to: list[str], delivery_id: int) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[devyard] {report.headline}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Message-ID"] = make_msgid(f"delivery{delivery_id}", domain="devyard")
    message["X-Devyard-Run"] = str(report.run_id)
    message.set_content(report.text())
    return message


def _smtp_send(settings: Settings, message: EmailMessage) -> Answer:
    """Send over SMTP, blocking (call in a thread)."""
    timeout = settings.notify_timeout_s
    context = ssl.create_default_context(cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None)
    try:
        smtp: smtplib.SMTP
        if settings.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    return Answer(False, None, "The SMTP server does not offer STARTTLS; nothing was sent.")
                smtp.starttls(context=context)
                smtp.ehlo()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            refused = smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return Answer(False, exc.smtp_code, text[:ANSWER_CHARS], retry=exc.smtp_code < 500)
    except smtplib.SMTPRecipientsRefused as exc:
        return Answer(False, None, f"Every recipient was refused: {', '.join(sorted(exc.recipients))}.")
    except smtplib.SMTPNotSupportedError:
        return Answer(False, None, "The SMTP server does not offer login (AUTH) on this connection.")
    except ssl.SSLError as exc:
        return Answer(False, None, f"TLS with the SMTP server failed ({exc.reason or exc}).", retry=True)
    except (smtplib.SMTPException, OSError) as exc:
        return unreachable(exc, timeout)
    if refused:
        return Answer(True, 250, f"Sent; refused for {', '.join(sorted(refused))}.")
    return Answer(True, 250, "Sent.")


async def send_email(settings: Settings, to: list[str], report: RunReport, delivery_id: int) -> Answer:
    if not settings.smtp_host:
        return Answer(False, None, "No SMTP server is configured (DEVYARD_SMTP_HOST).")
    message = email_message(report, settings.smtp_from, to, delivery_id)
    return await asyncio.to_thread(_smtp_send, settings, message)
