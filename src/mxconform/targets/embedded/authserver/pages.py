"""Server-rendered HTML in MAS's shapes: plain POST forms, a hidden `csrf` field, no script.

The field and button names are what the harness's form driver (and MAS's own templates) use:
`username`, `password`, `password_confirm`, `code`, `confirm_device`, `action`.
"""

from __future__ import annotations

from typing import Any

from flask import render_template_string

_TOP = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif;max-width:36em;margin:2em auto}
.error{color:#a00}label{display:block;margin:.5em 0}</style></head>
<body><h1>{{ title }}</h1>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
"""
_END = "</body></html>\n"
_CSRF = '<input type="hidden" name="csrf" value="{{ csrf }}">'

ERROR = _TOP + "<p>{{ message }}</p>" + _END

LOGIN = (
    _TOP
    + """<form method="post">"""
    + _CSRF
    + """
<label>Username <input type="text" name="username" value="{{ username }}"
  autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password"
  required></label>
<button type="submit">Continue</button>
</form>
<p><a href="{{ other_url }}">Create an account</a></p>
"""
    + _END
)

REGISTER = (
    _TOP
    + """<form method="post">"""
    + _CSRF
    + """
<label>Username <input type="text" name="username" value="{{ username }}"
  autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="new-password"
  required></label>
<label>Confirm password <input type="password" name="password_confirm"
  autocomplete="new-password" required></label>
<button type="submit">Create account</button>
</form>
<p><a href="{{ other_url }}">Sign in instead</a></p>
"""
    + _END
)

CONSENT = (
    _TOP
    + """<p><strong>{{ client_name }}</strong>{% if client_uri %}
(<a href="{{ client_uri }}">{{ client_uri }}</a>){% endif %} asks to act as
<strong>{{ user_id }}</strong> with:</p>
<ul>{% for s in scopes %}<li><code>{{ s }}</code></li>{% endfor %}</ul>
<form method="post">"""
    + _CSRF
    + """
<button type="submit" name="action" value="consent">Allow</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>
"""
    + _END
)

LINK = (
    _TOP
    + """<p>Enter the code shown on your device.</p>
<form method="post">"""
    + _CSRF
    + """
<label>Code <input type="text" name="code" value="{{ code }}" autocomplete="off"
  required></label>
<button type="submit">Continue</button>
</form>
"""
    + _END
)

DEVICE = (
    _TOP
    + """<p>A device using <strong>{{ client_name }}</strong> asks to act as
<strong>{{ user_id }}</strong> with:</p>
<ul>{% for s in scopes %}<li><code>{{ s }}</code></li>{% endfor %}</ul>
<form method="post">"""
    + _CSRF
    + """
<label><input type="checkbox" name="confirm_device" required>
  I started this sign-in on my device</label>
<button type="submit" name="action" value="consent">Allow</button>
<button type="submit" name="action" value="reject">Reject</button>
</form>
"""
    + _END
)

MESSAGE = _TOP + "<p>{{ message }}</p>" + _END

ACCOUNT = (
    _TOP
    + """<p>Signed in as <strong>{{ user_id }}</strong>.</p>
<h2>Sessions</h2>
{% if sessions %}<ul>{% for s in sessions %}<li>
{{ s.name }}{% if s.device_id %} &mdash; device <code>{{ s.device_id }}</code>
(<a href="?action=org.matrix.device_view&amp;device_id={{ s.device_id }}">view</a>,
<a href="?action=org.matrix.device_delete&amp;device_id={{ s.device_id }}">sign out</a>)
{% endif %}</li>{% endfor %}</ul>{% else %}<p>No active sessions.</p>{% endif %}
<p><a href="?action=org.matrix.profile">Profile</a> &middot;
<a href="?action=org.matrix.cross_signing_reset">Reset cross-signing</a> &middot;
<a href="?action=org.matrix.account_deactivate">Deactivate account</a></p>
"""
    + _END
)

PROFILE = (
    _TOP
    + """<dl><dt>Username</dt><dd>{{ username }}</dd><dt>Matrix ID</dt><dd>{{ user_id }}</dd>
</dl><p><a href="{{ account_url }}">Back to the account</a></p>"""
    + _END
)

DEVICE_VIEW = (
    _TOP
    + """<dl><dt>Device</dt><dd><code>{{ device_id }}</code></dd>
<dt>Client</dt><dd>{{ name }}</dd><dt>Scope</dt><dd><code>{{ scope }}</code></dd></dl>
<p><a href="?action=org.matrix.device_delete&amp;device_id={{ device_id }}">Sign out</a>
&middot; <a href="{{ account_url }}">Back to the account</a></p>"""
    + _END
)

CONFIRM = (
    _TOP
    + """<p>{{ message }}</p>
<form method="post">"""
    + _CSRF
    + """
<button type="submit" name="action_confirm" value="confirm">{{ button }}</button>
</form>
<p><a href="{{ account_url }}">Back to the account</a></p>
"""
    + _END
)


def render(template: str, **context: Any) -> str:
    """Render with Jinja's autoescaping (Flask turns it on for string templates)."""
    context.setdefault("error", None)
    return render_template_string(template, **context)
