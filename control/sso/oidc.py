"""The identity provider, as a relying party sees it (OpenID Connect Core 1.0, code flow + PKCE).

authlib builds the authorization request and the PKCE challenge; joserfc (authlib's JOSE library)
verifies the ID token: signature against the provider's published keys, ``iss``, ``aud``,
``exp``, ``iat`` and the ``nonce`` this sign-in sent. Nothing read from the provider's answers
is echoed into an error: a failed exchange names the provider's error code only, never the
authorization code or the client secret that were sent.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from control.settings import Settings
from control.sso.problem import SsoProblem

METADATA_TTL_S = 3600.0
CLOCK_LEEWAY_S = 60
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"]


def new_secret() -> str:
    """A random state, nonce or PKCE verifier (43+ characters of RFC 7636's alphabet)."""
    token: str = generate_token(48)
    return token


class IdentityProvider:
    """One configured provider; discovery and keys are fetched on first use and cached."""

    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self._client_secret = settings.oidc_client_secret
        self.scopes = settings.oidc_scopes
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None

    def __repr__(self) -> str:  # never the secret
        return f"IdentityProvider(issuer={self.issuer!r}, client_id={self.client_id!r})"

    def authorization_url(self, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        """Where to send the browser: the provider's login, coming back to ``redirect_uri``."""
        endpoint = self._endpoint("authorization_endpoint")
        uri: str = prepare_grant_uri(
            endpoint,
            self.client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=self.scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
        return uri

    def redeem(self, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> dict[str, Any]:
        """Exchange the authorization code; the verified ID token's claims, completed from the
        userinfo endpoint when the ID token lacks some."""
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "client_id": self.client_id,
        }
        auth = (self.client_id, self._client_secret) if self._client_secret else None
        answer = self._post_form(self._endpoint("token_endpoint"), data, auth)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise SsoProblem(
                "idp_error", "The identity provider's answer has no ID token; is the 'openid' scope allowed?", 502
            )
        claims = self.verify_id_token(id_token, nonce)
        access_token = answer.get("access_token")
        userinfo_endpoint = self.metadata().get("userinfo_endpoint")
        if isinstance(access_token, str) and isinstance(userinfo_endpoint, str):
            extra = self._userinfo(userinfo_endpoint, access_token)
            if extra.get("sub") == claims["sub"]:  # OIDC Core 5.3.2: another subject is not this person
                claims = {**extra, **claims}
        return claims

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of a valid ID token for this client and this sign-in; SsoProblem otherwise."""
        try:
            token = jwt.decode(id_token, self._key_set(id_token), algorithms=SIGNING_ALGORITHMS)
        except JoseError as exc:
            raise SsoProblem("invalid_id_token", f"The ID token's signature does not verify ({exc.error}).") from None
        registry = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY_S,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            sub={"essential": True},
            exp={"essential": True},
        )
        claims = dict(token.claims)
        try:
            registry.validate(claims)
        except JoseError as exc:
            claim = getattr(exc, "claim", None) or "a claim"
            raise SsoProblem(
                "invalid_id_token", f"The ID token is not valid for this devyard ({claim}: {exc.error})."
            ) from None
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise SsoProblem("invalid_id_token", "The ID token was issued to another party (azp).")
        if claims.get("nonce") != nonce:
            raise SsoProblem(
                "nonce_mismatch", "The ID token does not belong to this sign-in (nonce mismatch); start again."
            )
        return claims

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < METADATA_TTL_S:
                return self._metadata
        data = self._get_json(self.issuer + "/.well-known/openid-configuration")
        if data.get("issuer", "").rstrip("/") != self.issuer:
            raise SsoProblem(
                "idp_error", f"The identity provider at {self.issuer} names another issuer; check oidc_issuer.", 502
            )
        with self._lock:
            self._metadata, self._metadata_at, self._keys = data, time.monotonic(), None
        return data

    def _endpoint(self, name: str) -> str:
        value = self.metadata().get(name)
        if not isinstance(value, str):
            raise SsoProblem("idp_error", f"The identity provider publishes no {name}.", 502)
        return value

    def _key_set(self, id_token: str) -> KeySet:
        """The provider's keys; fetched again once when the token names a key not among them
        (the provider rotated its keys)."""
        try:
            kid = jws.extract_compact(id_token.encode()).headers().get("kid")
        except (JoseError, ValueError):
            kid = None  # jwt.decode says what is wrong with it
        keys = self._keys
        if keys is None or (kid is not None and not _has_key(keys, kid)):
            keys = KeySet.import_key_set(self._get_json(self._endpoint("jwks_uri")))  # type: ignore[arg-type]
            self._keys = keys
        return keys

    def _userinfo(self, endpoint: str, access_token: str) -> dict[str, Any]:
        try:
            response = httpx.get(endpoint, headers={"Authorization": f"Bearer {access_token}"}, timeout=HTTP_TIMEOUT)
        except httpx.HTTPError:
            return {}
        data = _json(response)
        return data if response.status_code == 200 and isinstance(data, dict) else {}

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=HTTP_TIMEOUT, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise SsoProblem(
                "idp_unreachable",
                f"The identity provider at {self.issuer} cannot be reached ({type(exc).__name__}).",
                502,
            ) from None
        data = _json(response)
        if response.status_code != 200 or not isinstance(data, dict):
            raise SsoProblem("idp_error", f"The identity provider answered {response.status_code} to {url}.", 502)
        return data

    def _post_form(self, url: str, data: dict[str, str], auth: tuple[str, str] | None) -> dict[str, Any]:
        try:
            response = httpx.post(url, data=data, auth=auth, timeout=HTTP_TIMEOUT, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise SsoProblem(
                "idp_unreachable",
                f"The identity provider at {self.issuer} cannot be reached ({type(exc).__name__}).",
                502,
            ) from None
        answer = _json(response)
        if response.status_code != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            reason = f" ({error})" if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,40}", error) else ""
            raise SsoProblem(
                "idp_refused",
                f"The identity provider refused the sign-in{reason}; start again from `yard login --sso`.",
            )
        return answer


def _has_key(keys: KeySet, kid: str) -> bool:
    try:
        keys.get_by_kid(kid)
    except (JoseError, ValueError, KeyError):
        return False
    return True


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
