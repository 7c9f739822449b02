"""The one progress bar of long work: indexing, encoding, evaluation, bulk embedding, synthesis.

A bar counts in the unit the user thinks in (documents, questions) against a total when one is known, and
shows counts and a rate when not. It goes to stderr and only where someone can see it: never when
stderr is not a terminal (a log file or a pipe gets no bar lines), never under the CLI's global
``--quiet`` (:func:`set_quiet`), never when the caller says ``show=False``. A Jupyter kernel's stderr
counts as a terminal: a notebook shows the text bar.

Callers update the bar as each batch finishes; a batch should take seconds, not minutes, so that the bar
moves. tqdm is a core dependency.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

_QUIET = False
_BLOCK = 1 << 20  # bytes read at a time by count_lines
_HF_BARS = "HF_HUB_DISABLE_PROGRESS_BARS"  # read by huggingface_hub when imported (transformers follows it)


def set_quiet(quiet: bool) -> bool:
    """Turn every bar off (``quiet=True``) or back on; returns the previous setting, to put back later."""
    global _QUIET
    previous, _QUIET = _QUIET, bool(quiet)
    return previous


def is_quiet() -> bool:
    return _QUIET


def is_interactive(stream: Any) -> bool:
    """A terminal, or a Jupyter kernel's stream (its ``isatty`` is False, yet the notebook shows the bar)."""
    if type(stream).__module__.startswith("ipykernel"):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def progress(*, total: int | None, desc: str, unit: str, show: bool = True, mininterval: float = 0.5,
             stream: TextIO | None = None) -> Any:
    """A tqdm bar (use it as a context manager and call ``update(n)``): ``total`` in ``unit`` s, or None
    for an unknown total (counts and rate only); redrawn at most every ``mininterval`` seconds. Off (a
    disabled bar: updates cost nothing) when ``show`` is False, under ``--quiet``, or when ``stream``
    (default: ``sys.stderr`` at the time of the call) is not a terminal."""
    from tqdm import tqdm

    out = sys.stderr if stream is None else stream
    enabled = show and not _QUIET and is_interactive(out)
    return tqdm(total=total, desc=desc, unit=unit, mininterval=mininterval, file=out, disable=not enabled,
                dynamic_ncols=True)


@contextmanager
def library_bars_off() -> Iterator[None]:
    """Hugging Face's download and weight-loading bars off inside the block, as ours are (the CLI under
    ``--quiet`` or without a terminal): through the variable for a library imported inside, through its own
    switch for one already imported. A library imported inside keeps its bars off afterwards."""
    previous = os.environ.get(_HF_BARS)
    os.environ[_HF_BARS] = "1"
    hub, hf_logging = sys.modules.get("huggingface_hub.utils"), sys.modules.get("transformers.utils.logging")
    hub_was_off = hub.are_progress_bars_disabled() if hub else True
    hf_was_on = hf_logging.is_progress_bar_enabled() if hf_logging else False
    if hub:
        hub.disable_progress_bars()
    if hf_logging:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_HF_BARS, None)
        else:
            os.environ[_HF_BARS] = previous
        if hub and not hub_was_off:
            hub.enable_progress_bars()
        if hf_logging and hf_was_on:
            hf_logging.enable_progress_bar()


def count_lines(path: str | Path) -> int:
    """Lines of a plain (uncompressed) file, counted in 1 MiB blocks without decoding: a cheap total for a
    JSONL file's records (blank or bad lines included, so an upper bound)."""
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")  # a last line without its newline
