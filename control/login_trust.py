"""What `yard login URL` trusts, decided before a token is typed or sent.

- ``http://``: nothing to verify; a token may go to another machine only with ``--insecure-http``.
- ``--fingerprint``: the server's certificate must have exactly that fingerprint; it is pinned.
- ``--ca-file``: the certificate must chain to that CA and name the host.
- neither: what the profile trusted before for the same URL (its CA file, or its pin: a changed
  certificate is refused, as ssh refuses a changed host key); else the system trust store; else
  trust on first use: the fingerprint is shown and pinned if the person at the terminal accepts it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable

from control.reach import unreachable
from control.tlspin import CertificateChanged, handshake_problem, peer_certificate, why_refused
from control.trust import Trust, TrustProblem, check_plain_http, fingerprint_of, parse_fingerprint, url_host

# Shows the question and returns the answer; None: nobody to ask (not a terminal).
Ask = Callable[[str], bool] | None


def _address(url: str) -> tuple[str, int]:
    host = url_host(url)
    netloc = url.partition("://")[2].partition("/")[0].rpartition("@")[2]
    port_text = netloc.rpartition("]")[2] if netloc.startswith("[") else netloc.partition(":")[2]
    port_text = port_text.removeprefix(":")
    if port_text and not port_text.isdigit():
        raise TrustProblem(f"'{url}' has an invalid port.")
    return host, int(port_text) if port_text else 443


def _shown(url: str) -> str:
    host, port = _address(url)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server_fingerprint(url: str) -> str:
    """The fingerprint of the certificate ``url`` presents."""
    host, port = _address(url)
    try:
        return fingerprint_of(peer_certificate(host, port))
    except OSError as exc:
        raise TrustProblem(unreachable(url, exc)) from exc


def _problem(url: str, trust: Trust) -> ssl.SSLError | None:
    host, port = _address(url)
    try:
        return handshake_problem(host, port, trust)
    except OSError as exc:
        raise TrustProblem(unreachable(url, exc)) from exc


def choose_trust(
    url: str,
    *,
    ca_file: str | None = None,
    fingerprint: str | None = None,
    insecure_http: bool = False,
    pinned: Trust | None = None,
    ask: Ask = None,
) -> Trust:
    """The trust to log in to ``url`` with and save in its profile; :class:`TrustProblem` (one
    sentence) when there is none. ``pinned``: the profile's trust if it was saved for this URL."""
    if ca_file and fingerprint:
        raise TrustProblem("Pass --ca-file or --fingerprint, not both.")
    if url.startswith("http://"):
        if ca_file or fingerprint:
            raise TrustProblem("--ca-file and --fingerprint verify https:// URLs; this one is plain http://.")
        trust = Trust(insecure_http=insecure_http)
        check_plain_http(url, "a token", trust)
        return trust
    where = _shown(url)
    if fingerprint:
        pin = parse_fingerprint(fingerprint)
        seen = server_fingerprint(url)
        if seen != pin:
            raise TrustProblem(
                f"The certificate of {where} has the fingerprint {seen}, not the {pin} you gave; check the"
                " address, and the fingerprint with the server's administrator."
            )
        return Trust(fingerprint=pin)
    if not ca_file and pinned is not None and pinned.ca_file and not pinned.fingerprint:
        ca_file = pinned.ca_file  # logging in again keeps the CA file this profile was given
    if ca_file:
        trust = Trust(ca_file=os.path.abspath(os.path.expanduser(ca_file)))
        problem = _problem(url, trust)
        if problem is not None:
            raise TrustProblem(
                f"The certificate of {where} is not trusted by {trust.ca_file} ({why_refused(problem)})."
            )  # type: ignore[arg-type]
        return trust
    if pinned is not None and pinned.fingerprint:
        problem = _problem(url, Trust(fingerprint=pinned.fingerprint))
        if isinstance(problem, CertificateChanged):
            raise TrustProblem(
                f"The certificate of {where} changed since it was pinned ({problem.expected} is now"
                f" {problem.seen}); if it was replaced on purpose, log in with --fingerprint {problem.seen}."
            )
        return Trust(fingerprint=pinned.fingerprint)
    if _problem(url, Trust()) is None:
        return Trust()  # the system trust store vouches for it
    seen = server_fingerprint(url)
    if ask is None:
        raise TrustProblem(
            f"The certificate of {where} is not signed by an authority this system trusts (its fingerprint is"
            f" {seen}); check that fingerprint with the server's administrator and pass --fingerprint {seen},"
            " or --ca-file."
        )
    question = (
        f"The certificate of {where} is not signed by an authority this system trusts.\n"
        f"Its SHA-256 fingerprint is {seen}\n"
        "Compare it with the one the server printed at `yard up`. Trust and pin it?"
    )
    if not ask(question):
        raise TrustProblem(f"Not logged in: the certificate of {where} was not trusted.")
    return Trust(fingerprint=seen)
