"""Named settings chosen by a string (a protocol, a BM25 configuration): one lookup, one error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from reasonir_rag.errors import InvalidInputError

T = TypeVar("T")


def by_name(table: Mapping[str, T], choice: str | T, kind: str) -> T:
    """``choice`` itself when it is not a name, else ``table[choice]``; an unknown name says what exists."""
    if not isinstance(choice, str):
        return choice
    if choice not in table:
        raise InvalidInputError(f"unknown {kind} {choice!r}; choose one of {sorted(table)}")
    return table[choice]
