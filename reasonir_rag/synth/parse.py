"""Reading the JSON object out of an LLM's reply: reasoning first, code fences, dict items, stray braces, a cut.

The recipe decodes from the reply's first ``{`` and gives up otherwise. A model that reasons step by step often
writes a brace before its answer (a set, a formula), so this tries every ``{`` in order and takes the first that
decodes to an object holding one of the expected keys. An item may be a string or ``{scenario, question}``
(joined as "scenario question", as the recipe does). A reply cut off inside the list (the ``max_tokens`` ran
out, or the model never closed it) gives the items it completed before the cut; an item cut in the middle is
never used. ``None`` means "no usable JSON": the caller retries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from reasonir_rag.synth.prompts import NEGATIVE_KEYS, QUERY_KEYS

_DECODER = json.JSONDecoder()
_SPACES = re.compile(r"\s+")


def json_objects(reply: str) -> list[dict[str, Any]]:
    """Every JSON object that decodes from a ``{`` of ``reply``, outermost first, in order."""
    found: list[dict[str, Any]] = []
    end = 0
    for match in re.finditer(r"\{", reply):
        if match.start() < end:  # inside an object already decoded
            continue
        try:
            value, stop = _DECODER.raw_decode(reply, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append(value)
            end = stop
    return found


def _item_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        parts = [item.get(k) for k in ("scenario", "question", "query")]
        return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return ""


def _field(reply: str, keys: Sequence[str]) -> Any:
    if not isinstance(reply, str):
        return None
    for obj in json_objects(reply):
        for key in keys:
            if key in obj:
                return obj[key]
    return _cut_list(reply, keys)


def _cut_list(reply: str, keys: Sequence[str]) -> list[Any] | None:
    """The complete items of the first ``"key": [`` list that never closes (an object that closes decoded)."""
    names = "|".join(re.escape(k) for k in keys)
    for match in re.finditer(rf'"(?:{names})"\s*:\s*\[', reply):
        items: list[Any] = []
        at = match.end()
        while True:
            at = len(reply) - len(reply[at:].lstrip())
            try:
                item, at = _DECODER.raw_decode(reply, at)
            except json.JSONDecodeError:
                break
            items.append(item)
            rest = reply[at:].lstrip()
            if not rest.startswith(","):
                break
            at = len(reply) - len(rest) + 1
        if items:
            return items
    return None


def parse_queries(reply: str) -> list[str] | None:
    """The queries of a query-writing reply (whitespace collapsed, empties dropped), or None."""
    value = _field(reply, QUERY_KEYS)
    items = [value] if isinstance(value, (str, dict)) else value if isinstance(value, list) else []
    texts = [_SPACES.sub(" ", _item_text(item)).strip() for item in items]
    texts = [t for t in texts if t]
    return texts or None


def parse_negative(reply: str) -> str | None:
    """The passage of a hard-negative reply, or None."""
    value = _field(reply, NEGATIVE_KEYS)
    if isinstance(value, list):
        value = " ".join(v for v in value if isinstance(v, str))
    return value.strip() or None if isinstance(value, str) else None
