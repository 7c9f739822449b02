"""Document loaders: formats, ids, metadata, and bad input that is logged and skipped, never fatal."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from reasonir_rag.index.loaders import LoadReport, load_documents


def _jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_jsonl_ids_metadata_and_titles(tmp_path):
    path = _jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"id": "a", "title": "Buffers", "text": "A buffer resists pH change.", "year": 2020},
            {"_id": 7, "text": "Enzymes lower activation energy.", "tags": ["bio"]},
            {"text": "No id here."},
            "",
        ],
    )
    report = LoadReport()
    docs = list(load_documents(path, report=report))
    assert [d.id for d in docs] == ["a", "7", "corpus.jsonl:3"]
    assert docs[0].text == "A buffer resists pH change."  # the title stays in the metadata
    assert docs[0].metadata == {"title": "Buffers", "year": 2020, "source": "corpus.jsonl"}
    assert docs[1].metadata == {"tags": ["bio"], "source": "corpus.jsonl"}
    assert (report.files, report.records, report.bad_records) == (1, 3, 0)


def test_custom_text_and_id_fields(tmp_path):
    path = _jsonl(tmp_path / "c.jsonl", [{"doc_no": "X1", "body": "Text one.", "id": "ignored"}])
    [doc] = load_documents([path], text_field="body", id_field="doc_no")
    assert doc.id == "X1" and doc.text == "Text one."
    assert "body" not in doc.metadata and "doc_no" not in doc.metadata


def test_broken_lines_are_logged_with_file_and_line_and_skipped(tmp_path, caplog):
    path = _jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "ok1", "text": "fine"},
            '{"id": "broken", "text": ',
            {"id": "notext", "title": "no text field"},
            {"id": "number", "text": 12},
            "[1, 2]",
            {"id": "blank", "text": "   "},
            {"id": "ok2", "text": "also fine"},
        ],
    )
    report = LoadReport()
    with caplog.at_level(logging.ERROR, logger="reasonir_rag.index.loaders"):
        docs = list(load_documents(path, report=report))
    assert [d.id for d in docs] == ["ok1", "ok2"]
    assert [where for where, _ in report.skipped] == [f"bad.jsonl:{n}" for n in (2, 3, 4, 5, 6)]
    for n in (2, 3, 4, 5, 6):
        assert f"bad.jsonl:{n}" in caplog.text
    reasons = dict(report.skipped)
    assert "invalid JSON" in reasons["bad.jsonl:2"] and "'text' is missing" in reasons["bad.jsonl:3"]
    assert "int" in reasons["bad.jsonl:4"] and "object" in reasons["bad.jsonl:5"]
    assert "empty" in reasons["bad.jsonl:6"]


def test_invalid_utf8_is_replaced_with_a_warning(tmp_path, caplog):
    (tmp_path / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    (tmp_path / "mixed.jsonl").write_bytes(
        b'{"id": "m", "text": "na\xefve"}\n{"id": "n", "text": "ok"}\n{"id": "o", "text": "\xff"}\n'
    )
    report = LoadReport()
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.index.loaders"):
        docs = {d.id: d for d in load_documents(tmp_path, report=report)}
    assert docs["latin1.txt"].text == "caf\ufffd cr\ufffdme"
    assert docs["m"].text == "na\ufffdve" and docs["n"].text == "ok"
    assert "latin1.txt" in caplog.text and "mixed.jsonl:1" in caplog.text
    assert "mixed.jsonl:3" not in caplog.text  # one warning per file ...
    assert report.replaced_utf8 == ["latin1.txt", "mixed.jsonl:1", "mixed.jsonl:3"]  # ... every line reported


def test_text_markdown_gzip_and_folders(tmp_path):
    root = tmp_path / "docs"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "b.md").write_text("# Title\n\nBody.", encoding="utf-8")
    (root / "a.txt").write_text("\ufeffPlain text.", encoding="utf-8")
    (root / "sub" / "deeper" / "c.txt").write_text("Deep.", encoding="utf-8")
    (root / "sub" / "empty.txt").write_text("  \n", encoding="utf-8")
    (root / "notes.pdf").write_bytes(b"%PDF-1.4")  # ignored inside folders
    (root / ".hidden" / "secret.txt").write_text("hidden", encoding="utf-8")
    with gzip.open(root / "sub" / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"_id": "g1", "title": "T", "text": "Gzipped."}) + "\n")
    report = LoadReport()
    docs = list(load_documents([root], report=report))
    assert [d.id for d in docs] == ["a.txt", "b.md", "g1", "sub/deeper/c.txt"]
    assert docs[0].text == "Plain text." and docs[1].metadata == {"source": "b.md", "format": "md"}
    assert docs[2].metadata == {"title": "T", "source": "sub/corpus.jsonl.gz"}
    assert report.files == 5 and report.skipped == [("sub/empty.txt", "empty file")]


def test_truncated_gzip_keeps_the_other_files(tmp_path, caplog):
    data = gzip.compress(b"".join(json.dumps({"id": f"r{i}", "text": f"row {i}"}).encode() + b"\n" for i in range(200)))
    (tmp_path / "a.jsonl.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "b.txt").write_text("still read", encoding="utf-8")
    report = LoadReport()
    with caplog.at_level(logging.ERROR, logger="reasonir_rag.index.loaders"):
        docs = list(load_documents(tmp_path, report=report))
    assert docs[-1].id == "b.txt"
    assert report.skipped[-1][0] == "a.jsonl.gz" and "could not read" in report.skipped[-1][1]
    assert "a.jsonl.gz" in caplog.text


def test_bad_paths_fail_at_once(tmp_path):
    (tmp_path / "table.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unsupported file type: .*table\.csv .*\.jsonl"):
        load_documents(tmp_path / "table.csv")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_documents([tmp_path / "missing.jsonl"])
    assert list(load_documents([])) == []
