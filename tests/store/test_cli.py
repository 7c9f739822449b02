"""The CLI end to end on a tmp folder of files: index, re-index, search --json, demo, and error exits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reasonir_rag.cli.main import main

PASSAGES = [
    {
        "id": "chem-1",
        "book": "Chemistry 2e",
        "section": "Buffers",
        "text": "A buffer solution contains a weak acid and its conjugate base and resists changes in pH.",
    },
    {
        "id": "phys-1",
        "book": "University Physics",
        "section": "Newton's Third Law",
        "text": "When you push on a wall, the wall pushes back on you with an equal and opposite force.",
    },
    {
        "id": "bio-1",
        "book": "Microbiology",
        "section": "Enzymes",
        "text": "Enzymes are catalysts that lower the activation energy of biochemical reactions.",
    },
]


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "passages.jsonl").write_text("\n".join(json.dumps(p) for p in PASSAGES) + "\n{broken\n", encoding="utf-8")
    (folder / "notes.md").write_text("# Notes\n\n" + "Long notes about energy and forces. " * 60, encoding="utf-8")
    return folder


def _index(corpus, db, encoder, *extra):
    return main(
        [
            "index",
            str(corpus),
            "--collection",
            "cli-test",
            "--path",
            str(db),
            "--encoder",
            encoder,
            "--chunk-tokens",
            "64",
            "--chunk-overlap",
            "8",
            "--no-progress",
            *extra,
        ]
    )


def test_index_then_search_json(tmp_path, corpus, tiny_reasonir_dir, capsys):
    db = tmp_path / "db"
    assert _index(corpus, db, str(tiny_reasonir_dir)) == 0
    out = capsys.readouterr().out
    assert "documents read:    4 from 2 file(s)" in out and "bad records:       1" in out
    chunks = int(out.split("chunks:")[1].split()[0])
    assert chunks > 4  # the long notes were split
    assert f"added:             {chunks}" in out

    assert _index(corpus, db, str(tiny_reasonir_dir)) == 0
    out = capsys.readouterr().out
    assert "added:             0" in out and f"skipped unchanged: {chunks}" in out

    # no --encoder: the encoder recorded in the collection is used
    assert (
        main(
            [
                "search",
                "Why does the wall push back?",
                "--collection",
                "cli-test",
                "--path",
                str(db),
                "-k",
                "3",
                "--json",
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert record["query"] == "Why does the wall push back?" and len(record["results"]) == 3
    scores = [r["score"] for r in record["results"]]
    assert scores == sorted(scores, reverse=True)
    for r in record["results"]:
        assert "#" in r["id"] and r["metadata"]["source_id"] in {"chem-1", "phys-1", "bio-1", "notes.md"}

    assert (
        main(["search", "enzymes", "--collection", "cli-test", "--path", str(db), "-k", "2", "--task", "biology"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(" 1. ") and lines[2].startswith(" 2. ")


def test_errors_exit_2_without_traceback(tmp_path, corpus, tiny_reasonir_dir, capsys):
    db = tmp_path / "db"
    tiny = str(tiny_reasonir_dir)
    assert main(["search", "q", "--collection", "nope", "--path", str(tmp_path / "no-db")]) == 2
    assert "no Chroma database" in capsys.readouterr().err
    assert not (tmp_path / "no-db").exists()

    assert _index(corpus, db, tiny) == 0
    capsys.readouterr()
    assert main(["search", "q", "--collection", "other-name", "--path", str(db)]) == 2
    err = capsys.readouterr().err
    assert "collection 'other-name' does not exist" in err and "Traceback" not in err

    assert _index(corpus, db, "minilm") == 2
    assert "differ in" in capsys.readouterr().err

    assert main(["search", "q", "--collection", "cli-test", "--path", str(db), "--task", "bogus"]) == 2
    assert "unknown BRIGHT task 'bogus'" in capsys.readouterr().err
    assert main(["search", "  ", "--collection", "cli-test", "--path", str(db)]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["search", "q", "--collection", "cli-test", "--path", str(db), "-k", "0"]) == 2
    assert "-k must be" in capsys.readouterr().err

    assert main(["index", str(tmp_path / "missing"), "--collection", "cli-test", "--path", str(db)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("a", encoding="utf-8")
    assert main(["index", str(tmp_path / "x.csv"), "--collection", "cli-test", "--path", str(db)]) == 2
    assert "unsupported file type" in capsys.readouterr().err
    fresh = tmp_path / "fresh-db"
    for name in ("ab", "a..b", "192.168.0.1", "x" * 513):  # Chroma's rule, checked before a model or a folder
        assert main(["index", str(corpus), "--collection", name, "--path", str(fresh), "--encoder", tiny]) == 2
        assert f"invalid collection name {name!r}" in capsys.readouterr().err
    assert not fresh.exists()


def test_console_entry_point_reports_errors_in_one_line(tmp_path):
    import chromadb

    chromadb.PersistentClient(path=str(tmp_path))  # a database without the collection asked for
    done = subprocess.run(
        [sys.executable, "-m", "reasonir_rag", "search", "q", "--collection", "nope", "--path", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "collection 'nope' does not exist" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
    verbose = subprocess.run(
        [
            sys.executable,
            "-m",
            "reasonir_rag",
            "-v",
            "search",
            "q",
            "--collection",
            "nope",
            "--path",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_demo_index_only_indexes_then_reuses_the_index(tmp_path, openstax_sample, capsys):
    """`demo --index-only`: the demo's index stage alone (the whole demo runs in tests/demo)."""
    data = tmp_path / "openstax"
    data.mkdir()
    (data / "sample.jsonl").write_text("\n".join(json.dumps(r) for r in openstax_sample), encoding="utf-8")
    args = ["demo", "--index-only", "--data", str(data), "--out", str(tmp_path / "demo"), "--no-progress"]
    assert main(args) == 0
    first = capsys.readouterr().out
    n = len(openstax_sample)
    assert first.startswith("reasonir-rag demo, profile offline")
    assert "all-MiniLM-L6-v2 as an offline stand-in for reasonir/ReasonIR-8B" in first
    assert "embedded up to 128 tokens" in first
    assert f"collection openstax-minilm in {tmp_path / 'demo' / 'chroma'}: {n} records; {n} encoded now" in first
    assert "CC BY 4.0" in first and "Q1 " not in first and "LLM calls" not in first

    assert main(args) == 0
    second = capsys.readouterr().out
    assert f"{n} records; 0 encoded now, {n} unchanged" in second


def test_index_reports_rejected_and_repeated_records_and_replaces_edited_files(tmp_path, corpus, tiny_reasonir_dir,
                                                                                capsys):
    """One bad record (a '$' key) and a repeated id: the rest is stored, both are named; an edited, shorter file
    leaves no stale chunks; a re-run encodes nothing."""
    db = tmp_path / "db"
    extra = [{"id": "phys-1", "text": "A repeated id with another text.", "book": "Again"},
             {"id": "bad-key", "text": "Stored only without its bad key.", "$op": 1}]
    with (corpus / "passages.jsonl").open("a", encoding="utf-8") as out:
        out.write("".join(json.dumps(r) + "\n" for r in extra))
    assert _index(corpus, db, str(tiny_reasonir_dir)) == 0
    out = capsys.readouterr().out
    assert "rejected:          1 (first: bad-key#0 (passages.jsonl:6): metadata key '$op' starts with '$'" in out
    assert "repeated ids:      1 (first kept: phys-1)" in out
    chunks = int(out.split("chunks:")[1].split()[0])
    assert f"added:             {chunks - 1}" in out

    (corpus / "notes.md").write_text("# Notes\n\nShort now.", encoding="utf-8")
    assert _index(corpus, db, str(tiny_reasonir_dir)) == 0
    out = capsys.readouterr().out
    removed = int(out.split("stale chunks:")[1].split()[0])
    assert removed >= 2 and "added:             1" in out  # only the edited file's one chunk was encoded
    assert _index(corpus, db, str(tiny_reasonir_dir)) == 0
    out = capsys.readouterr().out
    assert "added:             0" in out and "stale chunks:      0 removed" in out
    assert f"({chunks - 1 - removed} records)" in out


def test_auth_options_become_chromas_client_auth_settings(monkeypatch):
    from reasonir_rag.cli.common import connection
    from reasonir_rag.cli.main import build_parser

    monkeypatch.setenv("CHROMA_CLIENT_AUTH_CREDENTIALS", "cli-tok-5772156649")
    args = build_parser().parse_args(["search", "q", "--collection", "c", "--host", "127.0.0.1",
                                      "--auth", "token", "--auth-header", "X-Chroma-Token"])
    where = connection(args)
    assert (where.auth_provider, where.auth_header, where.auth_credentials) == ("token", "X-Chroma-Token", None)
    assert where.auth_settings() == {
        "chroma_client_auth_provider": "chromadb.auth.token_authn.TokenAuthClientProvider",
        "chroma_client_auth_credentials": "cli-tok-5772156649", "chroma_auth_token_transport_header": "X-Chroma-Token"}
    with pytest.raises(SystemExit):  # credentials never come from the command line
        build_parser().parse_args(["search", "q", "--collection", "c", "--auth-credentials", "x"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "q", "--collection", "c", "--auth", "kerberos"])
