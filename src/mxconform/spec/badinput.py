"""Malformed request bodies, drawn by hypothesis, for the bad-input checks.

A `BadBody` is the raw bytes a check sends and the Content-Type it sends them with. The
strategies draw them for one endpoint from a `Shape`: the harmless base body the endpoint
refuses anyway (a wrong password, a token never issued), the fields it knows and their JSON
types, and whether it takes a UIA `auth` object. Kinds drawn:

- `invalid-json`: text that is not JSON at all, or JSON cut short;
- `not-object`: JSON that is not an object (null, a number, a string, a list);
- `wrong-type`: a known field with a value of another JSON type;
- `auth`: `auth` null or not an object, or a stage with an unknown, missing or wrongly typed
  `type` and unknown fields (never a stage that could complete: no `m.login.dummy`, never the
  account's password);
- `missing-field`: a known field left out;
- `oversized`: a field holding a string of 10 000 to 70 000 characters;
- `non-ascii`: a field holding non-ASCII text (any Unicode but surrogates);
- `unknown-keys`: keys the endpoint does not know, beside the base body;
- `content-type`: the base body under a wrong Content-Type (text/plain, a form, none).

Hypothesis draws; it does not drive the async checks. `draw_examples` runs a sync `@given`
that only records each drawn body (generate phase only, seeded, no example database), and
the check sends them. Shrinking is by hand: `simpler` lists smaller variants of a failing
body (fewer keys, shorter strings, a shorter text), which the check re-sends, keeping the
smallest that still breaks the rule (hypothesis's own shrinker would have to call the server
synchronously from inside the running event loop).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# JSON types a field can hold; `wrong-type` draws a value of any other.
KINDS = ("string", "bool", "int", "list", "object", "null")
# Stage types that can never complete a UIA flow the harness did not set up.
_REAL_STAGE_PREFIX = "m."
PREVIEW = 160


@dataclass(frozen=True)
class BadBody:
    """One malformed request body: what is sent, and which kind of bad it is."""

    kind: str
    content: bytes = field(repr=False)
    content_type: str | None = JSON
    value: Any = field(default=None, repr=False, compare=False)  # the JSON value, if any

    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type} if self.content_type else {}

    def describe(self) -> str:
        text = self.content.decode("utf-8", "backslashreplace")
        shown = text if len(text) <= PREVIEW else f"{text[:PREVIEW]}… ({len(text)} characters)"
        return f"{self.kind}, Content-Type {self.content_type or 'none'}: {shown}"


@dataclass(frozen=True)
class Shape:
    """What an endpoint takes: a base body it refuses anyway, its known fields and types."""

    base: Mapping[str, Any]
    fields: Mapping[str, str]  # name -> one of KINDS
    auth: bool = False  # takes a UIA `auth` object
    form: bool = False  # an OAuth token endpoint: form-encoded, not JSON


def json_body(kind: str, value: Any, content_type: str | None = JSON) -> BadBody:
    return BadBody(kind, json.dumps(value, ensure_ascii=False).encode(), content_type, value)


def _form_body(kind: str, pairs: Mapping[str, Any]) -> BadBody:
    flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in pairs.items()}
    return BadBody(kind, urlencode(flat).encode(), FORM, dict(flat))


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False), st.text()
)
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


def _of_kind(kind: str) -> st.SearchStrategy[Any]:
    return {
        "string": st.text(),
        "bool": st.booleans(),
        "int": st.integers(),
        "list": st.lists(_scalars, max_size=3),
        "object": st.dictionaries(st.text(max_size=8), _scalars, max_size=3),
        "null": st.none(),
    }[kind]


def _other_type(kind: str) -> st.SearchStrategy[Any]:
    return st.one_of(*(_of_kind(k) for k in KINDS if k != kind))


def _invalid_json_text() -> st.SearchStrategy[bytes]:
    def not_json(text: str) -> bool:
        try:
            json.loads(text)
        except ValueError:
            return True
        return False

    cut = st.builds(lambda v: json.dumps({"k": v})[:-1], _json_values)  # an object cut short
    junk = st.sampled_from(["{", "{'type': 'x'}", "not json", '{"a":}', "[1,", "NaNa", "\x00"])
    return st.one_of(junk, cut, st.text(min_size=1)).filter(not_json).map(str.encode)


def _stage(user_id: str) -> st.SearchStrategy[Any]:
    """An `auth` value that can never complete a stage."""
    unknown_type = st.text(max_size=40).filter(lambda s: not s.startswith(_REAL_STAGE_PREFIX))
    wrong_password = st.fixed_dictionaries(
        {
            "type": st.just("m.login.password"),
            "identifier": st.just({"type": "m.id.user", "user": user_id}),
            "password": st.text(max_size=30).map(lambda s: "mxconform-wrong-" + s),
        }
    )
    other = st.fixed_dictionaries(
        {},
        optional={
            "type": unknown_type | _other_type("string"),
            "session": st.text(max_size=20) | _other_type("string"),
        },
    )
    with_extra = st.builds(
        lambda stage, extra: {**extra, **stage},
        wrong_password | other,
        st.dictionaries(st.text(max_size=12), _json_values, max_size=3),
    )
    return st.one_of(_other_type("object"), with_extra)


def bodies(shape: Shape, user_id: str = "@nobody:invalid") -> st.SearchStrategy[BadBody]:
    """Every kind of bad body for one endpoint."""
    base = dict(shape.base)
    names = sorted(shape.fields)

    def replaced(kind: str, name: str, value: Any) -> BadBody:
        body = {**base, name: value}
        return _form_body(kind, body) if shape.form else json_body(kind, body)

    def dropped(name: str) -> BadBody:
        body = {k: v for k, v in base.items() if k != name}
        return _form_body("missing-field", body) if shape.form else json_body("missing-field", body)

    kinds: list[st.SearchStrategy[BadBody]] = [
        _invalid_json_text().map(lambda b: BadBody("invalid-json", b, JSON)),
        st.builds(
            lambda v: json_body("not-object", v),
            _json_values.filter(lambda v: not isinstance(v, dict)),
        ),
        st.builds(
            lambda extra: (
                json_body("unknown-keys", {**extra, **base})
                if not shape.form
                else _form_body("unknown-keys", {**extra, **base})
            ),
            st.dictionaries(
                st.text(min_size=1, max_size=20).filter(lambda k: k not in shape.fields),
                _json_values,
                min_size=1,
                max_size=4,
            ),
        ),
        st.sampled_from(
            [
                BadBody("content-type", json.dumps(base).encode(), "text/plain", base),
                BadBody("content-type", urlencode(_flat(base)).encode(), FORM, base),
                BadBody("content-type", json.dumps(base).encode(), None, base),
            ]
            if not shape.form
            else [
                json_body("content-type", base),
                BadBody("content-type", urlencode(_flat(base)).encode(), "text/plain", base),
            ]
        ),
    ]
    if names:
        name = st.sampled_from(names)
        kinds += [
            name.flatmap(
                lambda n: _other_type(shape.fields[n]).map(lambda v: replaced("wrong-type", n, v))
            ),
            name.map(dropped),
            st.builds(
                lambda n, c, size: replaced("oversized", n, c * size),
                name,
                st.characters(codec="utf-8"),
                st.integers(10_000, 70_000),
            ),
            st.builds(
                lambda n, s: replaced("non-ascii", n, s),
                name,
                st.text(st.characters(min_codepoint=0x80, codec="utf-8"), min_size=1),
            ),
        ]
    if shape.auth:
        kinds.append(_stage(user_id).map(lambda a: replaced("auth", "auth", a)))
    return st.one_of(*kinds)


def _flat(base: Mapping[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in base.items()}


def draw_examples(strategy: st.SearchStrategy[BadBody], n: int, run_seed: int) -> list[BadBody]:
    """`n` bodies drawn from the strategy with the run's seed (the same seed, the same bodies)."""
    drawn: list[BadBody] = []

    @settings(
        max_examples=n,
        database=None,
        derandomize=False,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @seed(run_seed)
    @given(strategy)
    def collect(example: BadBody) -> None:
        drawn.append(example)

    collect()
    return drawn[:n]


def simpler(example: BadBody) -> Iterator[BadBody]:
    """Smaller variants of a failing body, smallest change first: keys dropped one at a time,
    strings halved, inner keys dropped, a list or a text cut short. The check re-sends them
    to find a smaller body that still breaks the rule."""
    value = example.value
    if isinstance(value, dict):
        for key in value:
            yield _again(example, {k: v for k, v in value.items() if k != key})
        for key, item in value.items():
            if isinstance(item, str) and len(item) > 1:
                yield _again(example, {**value, key: item[: len(item) // 2]})
            if isinstance(item, dict) and item:
                for inner in item:
                    smaller = {k: v for k, v in item.items() if k != inner}
                    yield _again(example, {**value, key: smaller})
    elif isinstance(value, str) and len(value) > 1:
        yield _again(example, value[: len(value) // 2])
    elif isinstance(value, list) and value:
        yield _again(example, value[:-1])
    elif example.kind == "invalid-json" and len(example.content) > 1:
        yield BadBody(example.kind, example.content[: len(example.content) // 2], JSON)


def _again(example: BadBody, value: Any) -> BadBody:
    """The same kind of body, with the same Content-Type and encoding, holding `value`."""
    if example.content_type == FORM and isinstance(value, dict):
        return _form_body(example.kind, value)
    return json_body(example.kind, value, example.content_type)
