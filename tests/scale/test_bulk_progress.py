"""Bulk embedding's progress: a total counted cheaply from the source, and a bar in documents on a terminal."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reasonir_rag.bulk.sources import count_rows
from reasonir_rag.types import Document


def test_count_rows_from_lists_jsonl_and_parquet_footers(tmp_path):
    assert count_rows([Document("a", "x"), Document("b", "y")]) == 2
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"id": f"a{i}", "text": "t"}) + "\n" for i in range(7)))
    (folder / "b.jsonl").write_text(json.dumps({"id": "b0", "text": "t"}))  # no final newline
    assert count_rows(folder) == 8 and count_rows(str(folder / "a.jsonl")) == 7
    table = pa.table({"id": [f"p{i}" for i in range(11)], "text": ["t"] * 11})
    pq.write_table(table, tmp_path / "part.parquet", row_group_size=4)  # three row groups
    assert count_rows(tmp_path / "part.parquet") == 11


def test_count_rows_is_unknown_where_counting_would_read_the_corpus(tmp_path):
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as out:
        out.write(json.dumps({"id": "g", "text": "t"}) + "\n")
    assert count_rows(tmp_path / "a.jsonl.gz") is None
    assert count_rows(iter([Document("a", "x")])) is None  # an iterator: counting would consume it
    assert count_rows(tmp_path / "missing") is None  # the run itself names the missing path


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.usefixtures("ray_cluster")
def test_bulk_run_shows_a_bar_in_documents(tmp_path, tiny_encoder, monkeypatch):
    from reasonir_rag.bulk.ray_embed import embed_corpus_with_ray

    rows = [{"id": f"doc-{i}", "text": f"passage {i} about enzymes"} for i in range(9)]
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    result = embed_corpus_with_ray(rows, encoder_spec=tiny_encoder, sink=str(tmp_path / "out"), rows_per_batch=4)
    assert result.encoded == 9
    assert "embedding into" in terminal.getvalue() and "9/9" in terminal.getvalue()
    quiet = Terminal()
    monkeypatch.setattr("sys.stderr", quiet)
    again = embed_corpus_with_ray(rows, encoder_spec=tiny_encoder, sink=str(tmp_path / "out"), show_progress=False)
    assert again.skipped == 9 and "embedding into" not in quiet.getvalue()
