"""The CLI's global flags (--version, --quiet) and `index`'s progress: a total in documents, off when quiet."""

from __future__ import annotations

import gzip
import io
import itertools
import json

import pytest

from reasonir_rag._common import progress as progress_module
from reasonir_rag._version import __version__
from reasonir_rag.cli import index as index_cmd
from reasonir_rag.cli.main import main


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"reasonir-rag {__version__}\n"


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    rows = [{"id": f"d{i}", "text": f"Passage {i} about forces and energy in physics."} for i in range(5)]
    (folder / "passages.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (folder / "notes.md").write_text("# Notes\n\nMomentum is conserved.", encoding="utf-8")
    return folder


def _index(folder, db, encoder, *flags: str, stderr: io.StringIO, monkeypatch) -> str:
    monkeypatch.setattr("sys.stderr", stderr)
    code = main([*flags, "index", str(folder), "--collection", "progress-test", "--path", str(db), "--encoder",
                 encoder, "--chunk-tokens", "0"])
    assert code == 0
    return stderr.getvalue()


def test_index_bar_counts_documents_against_a_counted_total(corpus, tmp_path, tiny_reasonir_dir, monkeypatch):
    assert index_cmd.count_documents([str(corpus)]) == 6  # five JSONL lines and one Markdown file
    bar = _index(corpus, tmp_path / "db", str(tiny_reasonir_dir), stderr=Terminal(), monkeypatch=monkeypatch)
    assert "indexing into progress-test" in bar and "6/6" in bar and "doc/s" in bar


def test_quiet_and_a_non_terminal_stderr_draw_no_bar(corpus, tmp_path, tiny_reasonir_dir, monkeypatch):
    quiet = _index(corpus, tmp_path / "db", str(tiny_reasonir_dir), "--quiet", stderr=Terminal(),
                   monkeypatch=monkeypatch)
    assert "indexing into" not in quiet and "doc/s" not in quiet
    assert "Loading weights" not in quiet and "it/s" not in quiet  # nor Hugging Face's bars
    assert not progress_module.is_quiet()  # main() puts the setting back
    piped = _index(corpus, tmp_path / "db", str(tiny_reasonir_dir), stderr=io.StringIO(), monkeypatch=monkeypatch)
    assert "indexing into" not in piped and "doc/s" not in piped and "it/s" not in piped


def test_a_gzipped_input_has_an_unknown_total_and_still_counts(tmp_path, tiny_reasonir_dir, monkeypatch):
    folder = tmp_path / "gz"
    folder.mkdir()
    with gzip.open(folder / "passages.jsonl.gz", "wt", encoding="utf-8") as out:
        out.write("".join(json.dumps({"id": f"g{i}", "text": f"Gzipped passage {i}."}) + "\n" for i in range(3)))
    assert index_cmd.count_documents([str(folder)]) is None
    bar = _index(folder, tmp_path / "db", str(tiny_reasonir_dir), stderr=Terminal(), monkeypatch=monkeypatch)
    assert "progress-test: 0doc [" in bar and "?doc/s]" in bar  # a count and a rate, no total yet
    assert "3/3" in bar  # the bar ends at what was read


class FakeClock:
    """time.perf_counter for _groups: the consumer advances it, so group sizes are checked without timing."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


@pytest.mark.parametrize(("seconds_per_doc", "settles_at"), [(0.0625, 32), (1 / 1024, 2048), (30.0, 1)])
def test_groups_take_about_two_seconds_each(monkeypatch, seconds_per_doc, settles_at):
    """Slow encoder: small groups, so the bar moves every ~2 s; fast encoder: up to 2048 at a time (times in
    powers of two: exact in floating point)."""
    clock = FakeClock()
    monkeypatch.setattr(index_cmd, "time", clock)
    sizes = []
    docs = iter(range(20_000))
    for group in index_cmd._groups(docs):
        sizes.append(len(group))
        clock.now += seconds_per_doc * len(group)
    assert sum(sizes) == 20_000 and sizes[0] == 16
    assert sizes[-2] == settles_at  # the last group is what was left
    assert all(b <= 4 * a for a, b in itertools.pairwise(sizes))  # grows at most 4x at a time
