"""The progress bar: a total in the user's unit, counts and rate without one, off off-terminal and when quiet."""

from __future__ import annotations

import io

import pytest

from reasonir_rag._common import progress as progress_module
from reasonir_rag._common.progress import count_lines, is_interactive, progress, set_quiet


class Terminal(io.StringIO):
    """A stream that says it is a terminal, so that tqdm draws into it."""

    def isatty(self) -> bool:
        return True


def _run(total: int | None, steps: int, **kwargs) -> str:
    stream = Terminal()
    with progress(total=total, desc="indexing into docs", unit="doc", stream=stream, mininterval=0, **kwargs) as bar:
        for _ in range(steps):
            bar.update(1)
    return stream.getvalue()


def test_a_known_total_is_shown_in_the_users_unit():
    out = _run(10, 3)
    assert "indexing into docs" in out and "3/10" in out and "doc/s" in out
    assert "10/10" not in out


def test_an_unknown_total_still_shows_counts_and_rate():
    out = _run(None, 5)
    assert "indexing into docs: 5doc [" in out and "doc/s]" in out  # no "5/..." and no percentage
    assert "%" not in out


def test_off_when_not_a_terminal_when_quiet_and_when_not_wanted():
    plain = io.StringIO()  # a log file or a pipe: isatty() is False
    with progress(total=4, desc="x", unit="doc", stream=plain, mininterval=0) as bar:
        bar.update(4)
    assert plain.getvalue() == ""
    assert _run(4, 4, show=False) == ""
    previous = set_quiet(True)
    try:
        assert previous is False and progress_module.is_quiet()
        assert _run(4, 4) == ""
    finally:
        assert set_quiet(previous) is True
    assert "4/4" in _run(4, 4)


def test_the_default_stream_is_stderr_at_call_time(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress(total=2, desc="encoding documents", unit="doc") as bar:
        bar.update(2)
        assert bar.mininterval == 0.5  # redrawn at most twice a second, however often it is updated
    assert "2/2" in terminal.getvalue()


def test_notebook_streams_count_as_terminals():
    kernel_stream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})()
    assert is_interactive(kernel_stream) and not is_interactive(io.StringIO()) and is_interactive(Terminal())
    closed = io.StringIO()
    closed.close()  # isatty() raises on a closed stream
    assert not is_interactive(closed) and not is_interactive(object())


@pytest.mark.parametrize("block", [3, 1 << 20])
def test_count_lines_counts_records_across_blocks(tmp_path, monkeypatch, block):
    monkeypatch.setattr(progress_module, "_BLOCK", block)
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "b"}\n\n{"text": "c"}')  # no final newline; a blank line
    assert count_lines(path) == 4
    path.write_bytes(b'{"text": "a"}\n')
    assert count_lines(path) == 1
    path.write_bytes(b"")
    assert count_lines(path) == 0
