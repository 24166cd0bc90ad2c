"""The few HTML pages of the browser half of `yard login --sso` (no scripts, no external files).

Every value is escaped; no page ever shows a token, an authorization code or a state.
"""

from __future__ import annotations

from html import escape

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}"
    "code,input{font-family:ui-monospace,monospace;font-size:1.4rem;letter-spacing:.1em}"
    "button{font-size:1rem;padding:.4rem 1.2rem}"
)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} - devyard</title>'
        f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head>'
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def enter_code(csrf: str, problem: str | None = None) -> str:
    """Ask for the code the terminal shows."""
    note = f'<p role="alert"><strong>{escape(problem)}</strong></p>' if problem else ""
    return _page(
        "Sign in to devyard",
        f"{note}<p>Enter the code your terminal shows.</p>"
        f'<form method="post" action="device"><input name="user_code" autocomplete="off" autofocus size="10">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}"> <button>Continue</button></form>',
    )


def confirm_code(csrf: str, user_code: str, client_name: str) -> str:
    """RFC 8628 section 5.4: the person checks the code against their terminal before signing in,
    so a link sent by someone else cannot sign them in on the sender's terminal unnoticed."""
    return _page(
        "Sign in to devyard",
        f"<p>A terminal (<strong>{escape(client_name)}</strong>) asks to sign in as you.</p>"
        f"<p>Check that it shows this code:</p><p><code>{escape(user_code)}</code></p>"
        f'<form method="post" action="device"><input type="hidden" name="user_code" value="{escape(user_code)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}"><button>It does: sign in</button></form>'
        "<p>If you did not run <code>yard login --sso</code> just now, close this page.</p>",
    )


def signed_in(user: str, client_name: str) -> str:
    return _page(
        "Signed in",
        f"<p>You are signed in to devyard as <strong>{escape(user)}</strong>.</p>"
        f"<p>Go back to your terminal ({escape(client_name)}); you can close this page.</p>",
    )


def failed(message: str) -> str:
    return _page("Sign-in failed", f'<p role="alert">{escape(message)}</p><p>Nothing was changed.</p>')
