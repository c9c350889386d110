"""Did-you-mean: a selection or an id that names nothing is one line naming the closest
names that exist, since a typo in `-k` or `-r` otherwise reads as "no check applies"."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from mxconform.spec import requirements

_KEYWORDS = {"and", "or", "not"}  # the words of a pytest -k expression that are not names


def closest(word: str, names: Iterable[str], n: int = 3) -> list[str]:
    """The names nearest `word`, compared without case (as `-k` matches)."""
    by_lower: dict[str, str] = {}
    for name in names:
        by_lower.setdefault(name.lower(), name)
    found: list[str] = []
    for cutoff in (0.75, 0.6):  # the near ones only, else the less near
        found = found or difflib.get_close_matches(word.lower(), list(by_lower), n, cutoff)
    return [by_lower[f] for f in found]


def did_you_mean(names: list[str]) -> str:
    return f" (did you mean {', '.join(names)}?)" if names else ""


def requirement_id(text: str) -> str:
    """`-r refresh-401` is `REFRESH-401`: the catalogue's spelling of an id given in any
    case; an id it does not have is kept as given (`requirement_problem` names it)."""
    given = text.strip()
    return {rid.upper(): rid for rid in requirements.catalogue()}.get(given.upper(), given)


def requirement_problem(wanted: Iterable[str]) -> str | None:
    """The `-r` ids the catalogue does not have, each with the closest ones it has."""
    ids = list(requirements.catalogue())
    unknown = [r for r in wanted if r not in requirements.catalogue()]
    if not unknown:
        return None
    parts = [f"-r {r}: not in the catalogue{did_you_mean(closest(r, ids))}" for r in unknown]
    return "; ".join(parts) + " (`mxconform requirements` lists them)"


def _names_of(check_ids: Iterable[str]) -> set[str]:
    """Every check id, each dotted prefix of one (`tokens.missing` for
    `tokens.missing.rejected.whoami`) and each of its words: `-k` matches any part of an id."""
    names: set[str] = set()
    for check_id in check_ids:
        parts = check_id.split(".")
        names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        names.update(parts)
    return names


def keyword_problem(expression: str, check_ids: set[str]) -> str:
    """`-k EXPR` matched no check: the closest ids to each of its words that match none."""
    names = _names_of(check_ids)
    lowered = [n.lower() for n in names]
    near: list[str] = []
    for word in re.findall(r"[\w.\-\[\]/]+", expression):
        if word.lower() in _KEYWORDS or any(word.lower() in n for n in lowered):
            continue
        near += [n for n in closest(word, names) if n not in near]
    return (
        f"-k {expression!r} selects no check{did_you_mean(near[:3])}; "
        "`mxconform list` names them all"
    )


def uncited_problem(wanted: list[str], literal: set[str]) -> str:
    """`-r` ids the catalogue has but no check's marker cites, each with why (its coverage;
    `literal`: the ids a check judges inside by a literal `req=`, which `-r` does not see)."""
    parts = []
    for rid in wanted:
        req = requirements.get(rid)
        if rid in literal:
            parts.append(
                f"-r {rid}: no check cites it by its marker or in its own module's "
                "functions (a literal req= elsewhere, e.g. a conftest helper, -r does not follow)"
            )
            continue
        if req.needs:
            why = f"it needs {req.needs}, which the harness is not given"
        elif req.untestable:
            why = f"untestable: {req.untestable}"
        else:
            why = "no check yet"
        parts.append(f"-r {rid}: no check cites it ({why})")
    return "; ".join(parts)
