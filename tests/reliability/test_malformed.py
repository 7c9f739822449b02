"""Malformed input to the loaders and the CLI: every bad record is named with its file and line, and every good
record still arrives (counted).

Covers broken JSONL lines, wrong encodings (latin-1, UTF-16/32 with and without a byte-order mark, UTF-8
byte-order marks mid-file), missing fields and columns, MMLU files with bad answers or an unclosed quote, a
wrong GPQA password (real encrypted zip; nothing may be written) and BEIR/BRIGHT files with bad lines; through
the Python loaders and through ``reasonir-rag index`` / ``reasonir-rag eval`` (real Chroma, tiny real encoder).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reasonir_rag.cli.main import main
from reasonir_rag.errors import GPQAPasswordError
from reasonir_rag.eval.gpqa import load_gpqa
from reasonir_rag.eval.ir_data import load_beir, load_bright
from reasonir_rag.eval.mmlu import load_mmlu, parse_mmlu_csv
from reasonir_rag.index.loaders import MAX_LOGGED_PER_FILE, LoadReport, load_documents

REPO = Path(__file__).resolve().parents[2]
GOOD = [{"id": f"g{i}", "title": f"Title {i}", "text": f"Good record {i}: enzymes lower activation energy. é 中"}
        for i in range(6)]


def _jsonl(records) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _load(path) -> tuple[list, LoadReport]:
    report = LoadReport()
    return list(load_documents(path, report=report)), report


# ------------------------------------------------------------------------------------------------ documents
def test_broken_jsonl_lines_are_named_and_the_good_records_kept(tmp_path, caplog):
    lines = [
        json.dumps(GOOD[0]),
        "{broken json",
        json.dumps(GOOD[1]),
        "[1, 2, 3]",
        json.dumps({"id": "no-text", "body": "x"}),
        json.dumps({"id": "number", "text": 42}),
        json.dumps({"id": "blank", "text": "   "}),
        "",
        json.dumps(GOOD[2]),
        "\ufeff" + json.dumps(GOOD[3]),  # a UTF-8 byte-order mark mid-file (two files concatenated)
        '"just a string"',
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="reasonir_rag.index.loaders"):
        docs, report = _load(path)
    assert [d.id for d in docs] == ["g0", "g1", "g2", "g3"] and report.records == 4
    assert [where for where, _ in report.skipped] == [f"mixed.jsonl:{n}" for n in (2, 4, 5, 6, 7, 11)]
    reasons = dict(report.skipped)
    assert "invalid JSON" in reasons["mixed.jsonl:2"] and "expected a JSON object, got list" in reasons["mixed.jsonl:4"]
    assert "'text' is missing (string fields here: body; choose one with --text-field)" in reasons["mixed.jsonl:5"]
    assert "a int, not a string" in reasons["mixed.jsonl:6"] and "is empty" in reasons["mixed.jsonl:7"]
    for where, _ in report.skipped:
        assert f"{where}: " in caplog.text  # each logged with file and line


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be-bom", "utf-32", "utf-8-sig"])
def test_byte_order_marked_files_are_read_in_their_encoding(tmp_path, caplog, encoding):
    text = _jsonl(GOOD)
    data = (b"\xfe\xff" + text.encode("utf-16-be")) if encoding == "utf-16-be-bom" else text.encode(encoding)
    (tmp_path / "wide.jsonl").write_bytes(data)
    notes = "Notes in UTF-16: résumé, 日本語."
    (tmp_path / "notes.txt").write_bytes(notes.encode("utf-16") if encoding != "utf-8-sig" else notes.encode(encoding))
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.index.loaders"):
        docs, report = _load(tmp_path)
    assert [d.text for d in docs if d.id != "notes.txt"] == [g["text"] for g in GOOD]
    assert [d.text for d in docs if d.id == "notes.txt"] == [notes]
    assert report.bad_records == 0 and report.records == len(GOOD) + 1
    if encoding != "utf-8-sig":
        assert "wide.jsonl: UTF-" in caplog.text and "byte-order mark" in caplog.text


def test_latin1_and_bomless_utf16_are_named_clearly(tmp_path, caplog):
    (tmp_path / "latin1.jsonl").write_bytes(_jsonl(GOOD[:3]).encode("latin-1", "replace"))
    (tmp_path / "utf16le.jsonl").write_bytes(_jsonl(GOOD[:2]).encode("utf-16-le"))  # no byte-order mark
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.index.loaders"):
        docs, report = _load(tmp_path)
    # latin-1: every record kept, the bad bytes replaced (U+FFFD) and reported with file and line
    assert [d.id for d in docs] == ["g0", "g1", "g2"] and all("\ufffd" in d.text for d in docs)
    assert report.replaced_utf8[:1] == ["latin1.jsonl:1"] and "latin1.jsonl:1: invalid UTF-8" in caplog.text
    # UTF-16 without a mark cannot be told from binary: each line is named, with the likely cause
    # (each "\n" is followed by its NUL high byte: 2 records read as 3 lines)
    assert [w for w, _ in report.skipped] == ["utf16le.jsonl:1", "utf16le.jsonl:2", "utf16le.jsonl:3"]
    assert all("UTF-16 text without a byte-order mark?" in why for _, why in report.skipped)


def test_a_flood_of_bad_records_is_logged_in_short(tmp_path, caplog):
    records = [{"id": i, "content": f"text {i}"} for i in range(MAX_LOGGED_PER_FILE + 15)] + GOOD[:1]
    (tmp_path / "wrong-field.jsonl").write_text(_jsonl(records), encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="reasonir_rag.index.loaders"):
        docs, report = _load(tmp_path / "wrong-field.jsonl")
    assert [d.id for d in docs] == ["g0"] and report.bad_records == MAX_LOGGED_PER_FILE + 15
    assert len(caplog.records) == MAX_LOGGED_PER_FILE + 1
    assert "wrong-field.jsonl: 15 more bad record(s) skipped" in caplog.records[-1].getMessage()
    # the same file read with the field it does have: nothing lost
    report = LoadReport()
    assert len(list(load_documents(tmp_path / "wrong-field.jsonl", text_field="content", report=report))) == 25
    assert report.bad_records == 1  # the GOOD record has no "content"


def test_truncated_gzip_keeps_what_was_read_and_the_other_files(tmp_path):
    blob = gzip.compress(_jsonl(GOOD * 50).encode())
    (tmp_path / "a-cut.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "b-good.jsonl").write_text(_jsonl(GOOD), encoding="utf-8")
    docs, report = _load(tmp_path)
    assert sum(d.metadata["source"] == "b-good.jsonl" for d in docs) == len(GOOD)
    assert any(w == "a-cut.jsonl.gz" and "could not read" in why for w, why in report.skipped)


# --------------------------------------------------------------------------------------------- CLI index
def _index(paths, db, tiny, *extra) -> int:
    return main(["index", *map(str, paths), "--collection", "malformed", "--path", str(db), "--encoder", str(tiny),
                 "--chunk-tokens", "0", "--no-progress", *extra])


def test_cli_index_counts_good_records_and_names_the_bad(tmp_path, tiny_reasonir_dir, tiny_encoder, capsys, caplog):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.jsonl").write_text(_jsonl(GOOD[:3]) + "{oops\n" + json.dumps({"id": "x", "body": "no text"}) + "\n",
                                    encoding="utf-8")
    (folder / "b-utf16.jsonl").write_bytes(_jsonl(GOOD[3:]).encode("utf-16"))
    (folder / "c-latin1.txt").write_bytes("Caf\xe9 au lait, cr\xe8me br\xfbl\xe9e.".encode("latin-1"))
    (folder / "d-empty.md").write_text("  \n", encoding="utf-8")
    db = tmp_path / "db"
    with caplog.at_level(logging.WARNING, logger="reasonir_rag"):
        assert _index([folder], db, tiny_reasonir_dir) == 0
    out = capsys.readouterr().out
    logged = caplog.text
    assert "documents read:    7 from 4 file(s)" in out
    assert "bad records:       3 (first: a.jsonl:4: invalid JSON" in out
    assert "collection:        malformed (7 records)" in out
    assert "a.jsonl:4: invalid JSON" in logged and "a.jsonl:5: text field 'text' is missing" in logged
    assert "d-empty.md: empty file" in logged
    assert "c-latin1.txt: invalid UTF-8" in logged and "b-utf16.jsonl: UTF-16" in logged

    from reasonir_rag.index.store import ChromaStore

    store = ChromaStore("malformed", path=str(db), encoder=tiny_encoder, create=False)
    assert sorted(d.id for d in store.iter_documents()) == sorted([*(g["id"] for g in GOOD), "c-latin1.txt"])


def test_cli_index_rejects_records_chroma_cannot_hold_one_by_one(tmp_path, tiny_reasonir_dir, tiny_encoder, capsys):
    """JSON that parses but that Chroma cannot store (a NaN or Infinity literal, an escaped lone surrogate in a
    value or the id, a key Chroma reserves) costs only its own record, named by file and line; a JSONL record
    with nested values is kept under the type policy (dict: JSON string, flat list: native list)."""
    lines = [
        json.dumps(GOOD[0]),
        '{"id": "nan-score", "text": "Scores must be finite.", "score": NaN}',
        json.dumps(GOOD[1]),
        '{"id": "inf-weights", "text": "Weights too.", "weights": [1.5, -Infinity]}',
        '{"id": "half-emoji", "text": "A title with half an emoji.", "title": "cake \\ud83c"}',
        '{"id": "bad-\\udc00-id", "text": "An id Chroma cannot hold."}',
        json.dumps({"id": "ops", "text": "Reserved operator key.", "$and": [1]}),
        json.dumps({"id": "nested", "text": "Nested values are fine.", "info": {"pages": [3, 4]}, "tags": ["x", "y"]}),
    ]
    (tmp_path / "chroma-bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = tmp_path / "db"
    assert _index([tmp_path / "chroma-bad.jsonl"], db, tiny_reasonir_dir) == 0
    out = capsys.readouterr().out
    assert "documents read:    8 from 1 file(s)" in out and "bad records:       0" in out
    assert "rejected:          5 (first: nan-score (chroma-bad.jsonl:2): metadata 'score' is nan" in out
    from reasonir_rag.index.store import ChromaStore

    store = ChromaStore("malformed", path=str(db), encoder=tiny_encoder, create=False)
    assert sorted(d.id for d in store.iter_documents()) == sorted([GOOD[0]["id"], GOOD[1]["id"], "nested"])
    assert store.get(["nested"])[0].metadata["tags"] == ["x", "y"]
    assert store.get(["nested"])[0].metadata["info"] == '{"pages": [3, 4]}'


def test_cli_index_with_no_readable_record_exits_2(tmp_path, tiny_reasonir_dir, capsys):
    (tmp_path / "all-bad.jsonl").write_text("{oops\n" + json.dumps({"id": "x", "body": "no text"}) + "\n",
                                            encoding="utf-8")
    assert _index([tmp_path / "all-bad.jsonl"], tmp_path / "db", tiny_reasonir_dir) == 2
    captured = capsys.readouterr()
    assert "bad records:       2" in captured.out and "no document could be read" in captured.err


def test_cli_index_bad_paths_exit_2_naming_the_path(tmp_path, tiny_reasonir_dir, capsys):
    assert _index([tmp_path / "missing.jsonl"], tmp_path / "db", tiny_reasonir_dir) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "table.csv").write_text("a,b\n", encoding="utf-8")
    assert _index([tmp_path / "table.csv"], tmp_path / "db", tiny_reasonir_dir) == 2
    err = capsys.readouterr().err
    assert "unsupported file type" in err and "table.csv" in err and "Traceback" not in err


# -------------------------------------------------------------------------------------------------- MMLU
def _mmlu_csv(rows, header=("question", "choice0", "choice1", "choice2", "choice3", "answer")) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def test_mmlu_bad_answers_columns_quotes_and_encodings(tmp_path, caplog):
    test = tmp_path / "test"
    test.mkdir()
    good = [[f"Question {i}?", "a", "b", "c", "d", str(i % 4)] for i in range(4)]
    rows = [good[0], ["Bad letter?", "a", "b", "c", "d", "E"], ["Bad index?", "a", "b", "c", "d", "7"],
            ["Superscript?", "a", "b", "c", "d", "²"], ["Too few", "a", "b", "3"], good[1],
            ["", "a", "b", "c", "d", "1"]]
    text = _mmlu_csv(rows) + '"Unclosed quote?,a,b,c,d,1\n' + _mmlu_csv(good[2:], header=None)
    (test / "physics_test.csv").write_text(text, encoding="utf-8")
    (test / "latin_test.csv").write_bytes(_mmlu_csv([["Caf\xe9?", "a", "b", "c", "d", "2"]]).encode("latin-1"))
    (test / "wide_test.csv").write_bytes(_mmlu_csv([["Wide?", "a", "b", "c", "d", "3"]]).encode("utf-16"))
    hendrycks = "Q one?,a,b,c,d,A\nQ two?,a,b,c,d,Z\nQ three?,a,b,c\n"  # no header, answer letters
    (test / "old_test.csv").write_text(hendrycks, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        ds = load_mmlu(tmp_path, split="test")
    counts = {s: sum(q.subject == s for q in ds) for s in ds.subjects}
    assert counts == {"latin": 1, "old": 1, "physics": 4, "wide": 1}
    assert {q.question for q in ds if q.subject == "physics"} == {f"Question {i}?" for i in range(4)}
    physics = str(test / "physics_test.csv")
    assert [p for p in ds.problems if p.startswith(physics)] == [
        f"{physics}:3: bad answer value 'E' (expected 0-3 or A-D)",
        f"{physics}:4: bad answer value '7' (expected 0-3 or A-D)",
        f"{physics}:5: bad answer value '²' (expected 0-3 or A-D)",
        f"{physics}:6: expected 6 columns, got 4",
        f"{physics}:8: empty question",
        f"{physics}:9: expected 6 columns, got 1 (a quote opened on this line is never closed; the lines below are "
        "read again)",
    ]
    old = str(test / "old_test.csv")
    assert [p for p in ds.problems if p.startswith(old)] == [
        f"{old}:2: bad answer letter 'Z' (expected A-D)", f"{old}:3: expected 6 columns, got 4"]
    assert f"{test / 'latin_test.csv'}:2: invalid UTF-8" in caplog.text and "UTF-16 text" in caplog.text
    assert "skipped 8 malformed record(s)" in caplog.text


def test_mmlu_structural_problems_are_clear_errors(tmp_path, capsys):
    test = tmp_path / "test"
    test.mkdir()
    (test / "chem_test.csv").write_text(_mmlu_csv([["Q?", "a", "b", "c", "d"]], header=(
        "question", "choice0", "choice1", "choice2", "choice3")), encoding="utf-8")
    with pytest.raises(ValueError, match=r"chem_test.csv: header .* lacks column\(s\) \['answer'\]"):
        load_mmlu(tmp_path)
    (test / "chem_test.csv").write_text(_mmlu_csv([["Q?", "a", "b", "c", "d", "9"]]), encoding="utf-8")
    with pytest.raises(ValueError, match=r"no usable question .*chem_test.csv:2: bad answer value '9'"):
        load_mmlu(tmp_path)
    # through the CLI: exit 2, one line naming the file, before any reader is contacted
    rc = main(["eval", "mmlu", "--data", str(tmp_path), "--collection", "kb0", "--path", str(tmp_path / "db"),
               "--reader", "openai:nobody", "--base-url",
               "http://127.0.0.1:9/v1", "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "chem_test.csv:2: bad answer value '9'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "db").exists()


def test_mmlu_parser_never_raises_on_csv_garbage():
    text = "question,choice0,choice1,choice2,choice3,answer\n" + "x" * 200_000 + ",a,b,c,d,1\nOK?,a,b,c,d,2\n"
    questions, problems = parse_mmlu_csv(text, subject="s", split="test", where="f.csv")
    assert [q.question for q in questions] == ["OK?"]
    assert problems == ["f.csv:2: unreadable CSV (field larger than field limit (131072)); line skipped"]


# -------------------------------------------------------------------------------------------------- GPQA
_NO_WRITES = r"""
import os, sys
# imported first: a fresh checkout writes .pyc files, which are not what this test is about
from reasonir_rag.cli.main import main
import reasonir_rag.cli.eval, reasonir_rag.eval.gpqa, reasonir_rag.eval.journal, reasonir_rag.eval.report
import reasonir_rag.eval.runner, reasonir_rag.pipeline.reranker, reasonir_rag.pipeline.rewriter
writes = []
def hook(event, args):
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
            writes.append(str(path))
    elif event in ("os.rename", "os.replace", "shutil.copyfile", "os.mkdir"):
        writes.append(f"{event}:{args[0]}")
sys.addaudithook(hook)
from reasonir_rag.eval.gpqa import load_gpqa
from reasonir_rag.errors import GPQAPasswordError
try:
    load_gpqa(sys.argv[1], "diamond", password="not-the-password")
except GPQAPasswordError as exc:
    print("python:", exc)
os.environ["GPQA_PASSWORD"] = "still-not-it"
rc = main(["eval", "gpqa", "--data", sys.argv[1], "--subset", "main", "--collection", "kb0", "--path", "db",
           "--reader", "openai:nobody",
           "--base-url", "http://127.0.0.1:9/v1", "--out", "eval-out", "--no-progress"])
print("cli rc:", rc, "writes:", writes)
"""


def test_wrong_gpqa_password_is_named_and_writes_nothing(repo_data, tmp_path):
    """A fresh interpreter with an audit hook: the error names the zip and the password; no file is opened
    for writing (no CSV, no report folder), through the Python API and the CLI."""
    zip_path = repo_data / "gpqa" / "dataset.zip"
    env = {k: v for k, v in os.environ.items() if k != "GPQA_PASSWORD"}
    done = subprocess.run([sys.executable, "-c", _NO_WRITES, str(zip_path)], cwd=tmp_path, capture_output=True,
                          text=True, env={**env, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    out = done.stdout
    assert "python: " in out and "dataset.zip: cannot decrypt 'dataset/gpqa_diamond.csv'" in out
    assert "wrong password?" in out
    assert "cli rc: 2 writes: []" in out
    assert "dataset.zip: cannot decrypt 'dataset/gpqa_main.csv'" in done.stderr and "wrong password" in done.stderr
    assert "Traceback" not in done.stderr and os.listdir(tmp_path) == []


def test_gpqa_bad_paths_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"GPQA zip .*nope\.zip does not exist"):
        load_gpqa(tmp_path / "nope.zip")
    (tmp_path / "fake.zip").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match=r"fake.zip: not a readable zip file"):
        load_gpqa(tmp_path / "fake.zip")
    assert not issubclass(ValueError, GPQAPasswordError)


# --------------------------------------------------------------------------------------------- BEIR/BRIGHT
def test_beir_bad_lines_and_encodings_lose_no_good_record(tmp_path, caplog):
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    corpus = ["\ufeff" + json.dumps({"_id": "d0", "title": "T", "text": "first"}),  # BOM on line 1
              json.dumps({"_id": "d1", "text": "second"}), "{broken", json.dumps({"text": "no id"}),
              json.dumps({"_id": "d2", "text": "caf\u00e9"}, ensure_ascii=False)]
    data = "\n".join(corpus).encode("utf-8").replace("caf\u00e9".encode(), b"caf\xe9")  # one latin-1 byte
    (root / "corpus.jsonl").write_bytes(data + b"\n")
    queries = _jsonl([{"_id": "q1", "text": "first?"}, {"_id": "q2", "text": "second?"}])
    (root / "queries.jsonl").write_bytes(queries.encode("utf-16"))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td1\tone\nq2\td2\n"
                                             "q2\td1\t1\r\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        col = load_beir(root)
    assert sorted(col.corpus) == ["d0", "d1", "d2"] and col.corpus["d2"].text == "caf\ufffd"
    assert col.corpus["d0"].text == "T first" and col.queries == {"q1": "first?", "q2": "second?"}
    assert col.qrels == {"q1": {"d0": 1}, "q2": {"d1": 1}}
    corpus_path, qrels_path = root / "corpus.jsonl", root / "qrels" / "test.tsv"
    assert col.problems == [
        f"{qrels_path}:3: relevance 'one' is not an integer",
        f"{qrels_path}:4: expected 3 tab-separated columns, got 2",
        f"{corpus_path}:3: invalid JSON (Expecting property name enclosed in double quotes)",
        f"{corpus_path}:4: needs '_id' and a string 'text'",
    ]
    assert f"{corpus_path}:5: invalid UTF-8 on 1 line(s)" in caplog.text


def test_bright_bad_examples_are_named(tmp_path):
    (tmp_path / "documents").mkdir()
    (tmp_path / "examples").mkdir()
    (tmp_path / "documents" / "biology.jsonl").write_text(_jsonl([
        {"id": "b1", "content": "cells"}, {"id": "b2", "content": None}, {"id": "b3", "content": "genes"}]),
        encoding="utf-8")
    (tmp_path / "examples" / "biology.jsonl").write_text(_jsonl([
        {"id": "e1", "query": "what are cells?", "gold_ids": ["b1"], "excluded_ids": ["N/A"]},
        {"id": "e2", "query": "no gold", "gold_ids": []},
        {"id": "e3", "query": "clash", "gold_ids": ["b3"], "excluded_ids": ["b3"]},
        {"id": "e4", "query": "genes?", "gold_ids": ["b3"]}]) + "not json\n", encoding="utf-8")
    col = load_bright(tmp_path, "biology")
    assert sorted(col.corpus) == ["b1", "b3"] and sorted(col.queries) == ["e1", "e4"]
    docs, examples = tmp_path / "documents" / "biology.jsonl", tmp_path / "examples" / "biology.jsonl"
    assert col.problems == [
        f"{docs}:2: needs 'id' and a string 'content'",
        f"{examples}:2: needs 'id', a string 'query' and a non-empty list 'gold_ids'",
        f"{examples}:3: excluded_ids overlap gold_ids (['b3'])",
        f"{examples}:5: invalid JSON (Expecting value)",
    ]
