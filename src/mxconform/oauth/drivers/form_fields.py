"""Which field of a login or registration form asks for the account's name, read from what
the page says about it: its `autocomplete` token, its name or id, its label. An
authorisation server written elsewhere names it `login`, `email` or `identifier` as often as
`username`; filling only a field called `username` could not log in there."""

from __future__ import annotations

import re

import lxml.html

_NAME_WORDS = re.compile(r"user|login|e-?mail|identifier|account", re.IGNORECASE)
_TEXTUAL = ("text", "email")


def label_of(element: lxml.html.HtmlElement) -> str:
    """The text of the label that names this input (by `for`, or the one around it)."""
    parent = element.getparent()
    if parent is not None and parent.tag == "label":
        return str(parent.text_content())
    ident = element.get("id")
    if not ident:
        return ""
    labels = element.getroottree().xpath("//label[@for=$ident]", ident=ident)
    return " ".join(label.text_content() for label in labels)


def asks_for_the_name(element: lxml.html.HtmlElement) -> bool:
    """Whether a text input is the account-name field, by role rather than by one name."""
    if (element.get("type") or "text").lower() not in _TEXTUAL:
        return False
    autocomplete = (element.get("autocomplete") or "").lower().split()
    if "username" in autocomplete or "email" in autocomplete:
        return True
    words = " ".join((element.get("name") or "", element.get("id") or "", label_of(element)))
    return bool(_NAME_WORDS.search(words))
