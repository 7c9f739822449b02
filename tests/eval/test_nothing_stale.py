"""Issue 17's evaluator classes: a retrieval journaled against one corpus is never served for another; a typo in
--collection or --path fails before any model loads and creates nothing; judgments that name documents the corpus
lacks are said; bad numbers are refused before any model loads; the report names the retriever's model and the
reader's real budget."""

from __future__ import annotations

import json
import logging

import pytest

from reasonir_rag import ChromaStore, Document, InvalidInputError
from reasonir_rag.cli.main import main
from reasonir_rag.eval.datasets import Dataset, Question
from reasonir_rag.eval.ir_data import load_beir
from reasonir_rag.eval.journal import Journal
from reasonir_rag.eval.runner import EvalSettings, RAGEvaluator

QUESTIONS = Dataset("tiny", "test", [Question(f"q{i}", "biology", f"Which organelle makes ATP, case {i}?",
                                              ("Mitochondrion", "Ribosome", "Golgi", "Lysosome"), 0)
                                     for i in range(2)], source="inline", fingerprint="tiny")


class _EchoReader:
    """A reader that answers "the answer is (A)" and counts its calls: the journal under test, not the model."""

    model_name = "echo-reader"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, prompts, **kwargs):
        self.calls += len(prompts)
        return ["the answer is (A)"] * len(prompts)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_adding_documents_makes_every_retrieval_new(tmp_path, minilm_encoder):
    store = ChromaStore("stale", encoder=minilm_encoder, path=tmp_path / "chroma")
    store.add([Document("a", "Ribosomes make proteins from amino acids.")])
    journal = Journal(tmp_path / "journal.sqlite")
    settings = EvalSettings(conditions=("rag",), show_progress=False)

    def run() -> dict:
        evaluator = RAGEvaluator(reader=_EchoReader(), journal=journal, retriever=store,  # type: ignore[arg-type]
                                 settings=settings)
        evaluator.report(QUESTIONS, "mmlu")
        return evaluator.calls

    assert run()["retrieval"] == {"new": 2, "journaled": 0}
    again = run()
    assert again["retrieval"] == {"new": 0, "journaled": 2} and again["reader"] == {"new": 0, "journaled": 2}
    store.add([Document("b", "Mitochondria make ATP by cellular respiration.")])
    assert run()["retrieval"] == {"new": 2, "journaled": 0}  # the new document can now be retrieved
    newest = [v for _, _, v in journal.items("retrieval")][-2:]
    assert all("b" in [d["id"] for d in v["docs"]] for v in newest)


def test_content_fingerprint_matches_the_corpus_fingerprint_and_follows_edits(tmp_path, minilm_encoder):
    from reasonir_rag.eval.report import corpus_fingerprint

    store = ChromaStore("fingerprinted", encoder=minilm_encoder, path=tmp_path / "chroma")
    docs = [Document("x", "Osmosis moves water across membranes."), Document("y", "Diffusion needs no energy.")]
    store.add(docs)
    assert store.content_fingerprint() == corpus_fingerprint(docs)
    assert store.content_fingerprint(page_size=1) == corpus_fingerprint(docs)
    store.add([Document("y", "Diffusion needs no energy input.")])
    assert store.content_fingerprint()["sha256"] != corpus_fingerprint(docs)["sha256"]
    described = store.describe()
    assert described["encoder"]["model"] == minilm_encoder.fingerprint["model"] and described["documents"] == 2


def test_report_names_the_retrievers_model_and_the_readers_real_budget(tmp_path, minilm_encoder):
    store = ChromaStore("named", encoder=minilm_encoder, path=tmp_path / "chroma")
    store.add([Document("a", "Mitochondria make ATP.")])
    evaluator = RAGEvaluator(reader=_EchoReader(), journal=Journal(tmp_path / "j.sqlite"),  # type: ignore[arg-type]
                             retriever=store, settings=EvalSettings(conditions=("rag",), max_tokens=77,
                                                                    show_progress=False))
    run = evaluator.report(QUESTIONS, "mmlu")["run"]
    assert run["retriever"]["encoder"]["model"] == minilm_encoder.fingerprint["model"]
    assert run["reader_generation"]["max_tokens"] == 77


@pytest.mark.parametrize("bad", [{"max_tokens": -5}, {"max_tokens": 0}, {"top_k": 0}, {"concurrency": 0},
                                 {"max_passage_tokens": -1}, {"temperature": -0.1}, {"max_tokens": 2.5}])
def test_bad_numbers_are_refused_by_name(bad):
    with pytest.raises(InvalidInputError, match=next(iter(bad))):
        EvalSettings(**bad)


def test_a_mistyped_path_or_collection_fails_before_any_model_loads_and_creates_nothing(tmp_path, minilm_encoder,
                                                                                         repo_data, capsys):
    ChromaStore("real", encoder=minilm_encoder, path=tmp_path / "chroma").add([Document("a", "Mitochondria.")])
    common = ["eval", "mmlu", "--data", str(repo_data / "mmlu"), "--sample", "1", "--conditions", "rag",
              "--reader", "hf:/nonexistent/reader", "--out", str(tmp_path / "out")]
    assert main([*common, "--collection", "real", "--path", str(tmp_path / "typo")]) == 2
    assert "no Chroma database at" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()
    assert main([*common, "--collection", "reel", "--path", str(tmp_path / "chroma")]) == 2
    err = capsys.readouterr().err
    assert "reel" in err and "/nonexistent/reader" not in err  # the collection failed first, not the reader
    for name in ("r", "bad name", "_real"):  # names Chroma would refuse only after the models load
        assert main([*common, "--collection", name, "--path", str(tmp_path / "chroma")]) == 2
        assert f"invalid collection name {name!r}: Chroma needs 3-512 characters" in capsys.readouterr().err
    (tmp_path / "not-a-db").mkdir()
    assert main(["search", "q", "--collection", "real", "--path", str(tmp_path / "not-a-db")]) == 2
    assert "is a folder but not a Chroma database (it has no chroma.sqlite3)" in capsys.readouterr().err
    assert list((tmp_path / "not-a-db").iterdir()) == []
    ChromaStore("empty", encoder=minilm_encoder, path=tmp_path / "chroma")
    assert main([*common, "--collection", "empty", "--path", str(tmp_path / "chroma"), "--reader",
                 "openai:nobody", "--base-url", "http://127.0.0.1:9/v1", "--encoder", "minilm"]) == 2
    assert "holds no documents" in capsys.readouterr().err


def _beir(root, qrels: str):
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "title": "", "text": t}) for i, t in
                                                 [("d1", "Photosynthesis needs light."), ("d2", "ATP is energy.")]))
    (root / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": f"question {q}"}) for q in "123"))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return root


def test_judgments_naming_documents_the_corpus_lacks_are_said(tmp_path, caplog):
    root = _beir(tmp_path / "beir", "1\td1\t1\n2\tgone-1\t1\n2\tgone-2\t1\n3\td2\t1\n3\tgone-3\t2\n")
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.eval.ir_data"):
        collection = load_beir(root)
    assert collection.judgment_gaps() == (3, ["2"])
    assert "3 relevant document id(s)" in caplog.text and "1 quer(ies) have none" in caplog.text
    described = collection.describe()
    assert (described["judged_missing_from_corpus"], described["queries_without_relevant_documents"]) == (3, 1)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.eval.ir_data"):
        assert load_beir(_beir(tmp_path / "clean", "1\td1\t1\n")).judgment_gaps() == (0, [])
    assert "not in the corpus" not in caplog.text


@pytest.mark.parametrize(("args", "message"), [(["--queries", "0"], "--queries must be >= 1"),
                                               (["--queries", "-1"], "--queries must be >= 1"),
                                               (["--queries", "2", "--other-docs", "-3"], "--other-docs must be >= 0"),
                                               (["--other-docs", "5"], "give --queries too")])
def test_retrieval_sample_sizes_are_checked_before_any_model_loads(tmp_path, args, message, capsys):
    root = _beir(tmp_path / "beir", "1\td1\t1\n")
    # the encoder named cannot load: a check that ran after loading would fail on it instead
    assert main(["eval", "retrieval", "--beir", str(root), "--encoder", str(tmp_path / "no-model"), *args]) == 2
    assert message in capsys.readouterr().err
