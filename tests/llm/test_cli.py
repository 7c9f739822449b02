"""The ``rewrite`` / ``rerank`` subcommands through their own argparse parser (the main CLI adds them the same way)."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from reasonir_rag.cli.llm import read_records, register
from tests.llm.helpers import SERVED_NAME


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reasonir-rag")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str], stdin: str = "") -> tuple[int, str]:
    args = _parser().parse_args(argv)
    out = io.StringIO()
    code = args.func(args, stdin=io.StringIO(stdin), stdout=out)
    return code, out.getvalue()


def test_register_adds_both_subcommands():
    parser = _parser()
    args = parser.parse_args(["rerank", "--query", "q", "--alpha", "0.3", "--top-n", "2"])
    assert args.command == "rerank" and args.alpha == 0.3 and args.top_n == 2 and args.llm.startswith("hf:")
    with pytest.raises(SystemExit):
        parser.parse_args(["rewrite", "question"])  # --llm is required for rewriting
    with pytest.raises(SystemExit):
        parser.parse_args(["rerank", "--mode", "sampling"])


def test_rerank_jsonl_in_jsonl_out(tiny_qwen_dir, tmp_path):
    rows = [{"id": "a", "text": "Paris is the capital of France.", "score": 0.2, "source": "wiki"},
            {"id": "b", "text": "Water boils at 100 C.", "score": 0.9, "metadata": {"page": 3}}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dst = tmp_path / "out.jsonl"
    code, _ = _run(["rerank", "--query", "boiling point of water", "--llm", f"hf:{tiny_qwen_dir}", "--device", "cpu",
                    "--input", str(src), "--output", str(dst), "--alpha", "0"])
    assert code == 0
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [o["id"] for o in out] == ["b", "a"]  # alpha 0: the retriever order
    assert out[0]["metadata"]["page"] == 3 and out[1]["metadata"]["source"] == "wiki"
    assert all(0 <= o["metadata"]["rerank_score"] <= 5 and "retrieval_score" in o["metadata"] for o in out)


def test_rerank_search_output_through_the_server(vllm_server, smollm2_dir):
    search = {"query": "What is the boiling point of water?",
              "results": [{"id": "x", "text": "Paris is in France.", "score": 0.5},
                          {"id": "y", "text": "The boiling point of water is 100 degrees Celsius.", "score": 0.5}]}
    code, out = _run(["rerank", "--llm", f"openai:{SERVED_NAME}", "--base-url", vllm_server.base_url,
                      "--tokenizer", str(smollm2_dir), "--top-n", "1"], stdin=json.dumps(search))
    assert code == 0
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["id"] in ("x", "y") and row["score"] == pytest.approx(
        0.5 * row["metadata"]["rerank_score"] / 5 + 0.5 * 0.5)


def test_rewrite_prints_one_json_line_per_question(vllm_server, smollm2_dir):
    code, out = _run(["rewrite", "Why is the sky blue?", "What is DNA?", "--llm", f"openai:{SERVED_NAME}",
                      "--base-url", vllm_server.base_url, "--tokenizer", str(smollm2_dir), "--max-tokens", "24",
                      "--style", "hyde", "--json"])
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [row["query"] for row in lines] == ["Why is the sky blue?", "What is DNA?"]
    assert all(row["prefix_kind"] == "document" and len(row["text"]) > len(row["query"]) for row in lines)


def test_read_records_formats_and_errors():
    lines = '{"id": "1", "text": "a", "score": 1}\n{"id": "2", "text": "b"}\n'
    ((q, docs),) = read_records(lines, "q")
    assert q == "q" and [d.id for d in docs] == ["1", "2"] and docs[1].score == 0.0
    two = json.dumps([{"query": "q1", "results": [{"text": "a"}]}, {"query": "q2", "results": [{"text": "b"}]}])
    assert [q for q, _ in read_records(two, None)] == ["q1", "q2"]
    with pytest.raises(ValueError, match="no query"):
        read_records(lines, None)
    with pytest.raises(ValueError, match="line 2"):
        read_records('{"text": "a"}\n{oops\n', "q")
    with pytest.raises(ValueError, match=r"line 1 has no 'text'.*non-numeric score"):
        read_records('{"id": 1}\n{"text": "x", "score": "high"}\n', "q")
    with pytest.raises(ValueError, match="no input"):
        read_records("  ", "q")
