"""Single sign-on: the device authorization grant for terminals (RFC 8628), the OpenID Connect
authorization-code flow with PKCE in the browser, and the sessions (access + refresh tokens) it
ends in. Nothing here speaks HTTP to clients: the routes are control/api/routes/auth.py and
control/api/routes/device_pages.py."""
