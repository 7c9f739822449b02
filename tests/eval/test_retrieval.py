"""Retrieval evaluation: BEIR and BRIGHT loaders, real SciFact with MiniLM and BM25, instructions, exclusions."""

from __future__ import annotations

import gzip
import json
import logging
import random

import numpy as np
import pytest

from reasonir_rag.eval.bm25 import BM25Retriever
from reasonir_rag.eval.ir_data import IRCollection, load_beir, load_bright, subsample
from reasonir_rag.eval.ir_metrics import evaluate_run
from reasonir_rag.eval.retrieval import dense_run, evaluate_retrieval, evaluate_tasks, top_k_cosine
from reasonir_rag.types import Document

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def scifact_sample(repo_data) -> IRCollection:
    full = load_beir(repo_data / "scifact", "test")
    assert (len(full.corpus), len(full.queries), len(full.qrels)) == (5183, 300, 300)
    return subsample(full, n_queries=30, n_other_docs=150, seed=0)


def _random_ndcg(collection: IRCollection, repeats: int = 20) -> float:
    """nDCG@10 of a random ranking of the whole collection, averaged over seeded draws."""
    ids = list(collection.corpus)
    total = 0.0
    for seed in range(repeats):
        rng = random.Random(seed)
        run = {q: {d: rng.random() for d in ids} for q in collection.queries}
        total += evaluate_run(collection.qrels, run, ["ndcg@10"]).mean["ndcg@10"]
    return total / repeats


def test_scifact_minilm_well_above_random(scifact_sample, minilm_encoder):
    assert len(scifact_sample.queries) == 30 and 150 < len(scifact_sample.corpus) <= 190
    result = evaluate_retrieval(scifact_sample, minilm_encoder, top_k=100)
    random_ndcg = _random_ndcg(scifact_sample)
    ndcg = result.scores.mean["ndcg@10"]
    logger.info("SciFact sample nDCG@10: MiniLM %.4f, random %.4f", ndcg, random_ndcg)
    # MTEB reports 0.645 on the full 5,183-document corpus; a ~185-document sample is easier
    assert ndcg > 0.6 and ndcg > random_ndcg + 0.5, (ndcg, random_ndcg)
    assert result.scores.mean["recall@100"] >= result.scores.mean["recall@10"] > 0.7
    assert result.scores.n_queries == 30 and all(len(r) == 100 for r in result.run.values())
    assert set(result.seconds) == {"encode_documents", "encode_queries", "search"}
    assert result.settings["retriever"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    summary = result.to_dict()
    assert summary["metrics"] == result.scores.mean and summary["n_queries"] == 30


def test_scifact_bm25_baseline(scifact_sample):
    bm25 = BM25Retriever(scifact_sample.corpus.values())
    result = evaluate_retrieval(scifact_sample, bm25, top_k=100)
    assert result.settings["kind"] == "index" and result.settings["retriever"]["retriever"] == "bm25s"
    random_ndcg = _random_ndcg(scifact_sample)
    logger.info("SciFact sample nDCG@10: BM25 %.4f, random %.4f", result.scores.mean["ndcg@10"], random_ndcg)
    assert result.scores.mean["ndcg@10"] > max(0.5, random_ndcg + 0.4)


def test_top_k_cosine_is_exact():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(7, 16)).astype(np.float32)
    idx, scores = top_k_cosine(queries, docs, 10, chunk=3)
    full = queries @ docs.T
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1)[:, :10])
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :10], rtol=1e-6)
    assert top_k_cosine(queries, docs[:4], 10)[0].shape == (7, 4)
    with pytest.raises(ValueError, match="embedding shapes do not match"):
        top_k_cosine(queries, docs[:, :8], 3)


# ------------------------------------------------------------------------------------------ BEIR format
def test_beir_loader_skips_and_names_bad_lines(tmp_path, caplog):
    (tmp_path / "qrels").mkdir()
    with gzip.open(tmp_path / "corpus.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"_id": "d1", "title": "Cats", "text": "Cats purr."}) + "\n")
        fh.write("{not json\n")
        fh.write(json.dumps({"title": "no id", "text": "x"}) + "\n")
        fh.write(json.dumps({"_id": 2, "text": "Dogs bark."}) + "\n")
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "do cats purr"}) + "\n" + json.dumps({"_id": "q9", "text": "x"}) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\tx\nq2\td2\t1\n")
    coll = load_beir(tmp_path)
    assert set(coll.corpus) == {"d1", "2"} and coll.corpus["d1"].text == "Cats Cats purr."
    assert coll.corpus["2"].text == "Dogs bark."
    assert coll.queries == {"q1": "do cats purr"} and coll.qrels == {"q1": {"d1": 1}}
    problems = "\n".join(coll.problems)
    assert "corpus.jsonl.gz:2: invalid JSON" in problems
    assert "corpus.jsonl.gz:3: needs '_id'" in problems
    assert "test.tsv:3: relevance 'x' is not an integer" in problems
    assert "1 judged query id(s) missing from queries.jsonl" in problems
    assert "skipped" in caplog.text
    with pytest.raises(FileNotFoundError, match=r"no qrels for split 'dev'.*available: \['test'\]"):
        load_beir(tmp_path, "dev")


# ---------------------------------------------------------------------------------------- BRIGHT format
def _write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


@pytest.fixture
def bright_root(tmp_path):
    docs = [
        {"id": "gold-1", "content": "Photosynthesis converts light energy into chemical energy in chloroplasts."},
        {"id": "leak-1", "content": "Why do plants need light? Photosynthesis uses light in chloroplasts."},
        {"id": "other-1", "content": "Mitochondria produce ATP through cellular respiration."},
        {"id": "other-2", "content": "The stock market fell sharply on Tuesday."},
        {"id": "gold-2", "content": "Enzymes lower the activation energy of reactions."},
    ]
    _write_jsonl(tmp_path / "documents" / "biology.jsonl", docs)
    _write_jsonl(tmp_path / "long_documents" / "biology.jsonl", [{"id": "long-1", "content": " ".join(
        d["content"] for d in docs)}])
    examples = [
        {"id": "0", "query": "Why do plants need light? Photosynthesis in chloroplasts", "gold_ids": ["gold-1"],
         "gold_ids_long": ["long-1"], "excluded_ids": ["leak-1"]},
        {"id": "1", "query": "How do enzymes speed up reactions?", "gold_ids": ["gold-2"],
         "gold_ids_long": ["long-1"], "excluded_ids": ["N/A"]},
        "{broken",
        {"id": "2", "query": "bad", "gold_ids": ["other-1"], "excluded_ids": ["other-1"]},
    ]
    _write_jsonl(tmp_path / "examples" / "biology.jsonl", examples)
    reasoned = [dict(e, query="Plants need light because photosynthesis converts light energy.")
                if isinstance(e, dict) and e["id"] == "0" else e for e in examples[:2]]
    _write_jsonl(tmp_path / "gpt4_reason" / "biology.jsonl", reasoned)
    return tmp_path


def test_bright_loader(bright_root):
    coll = load_bright(bright_root, "biology")
    assert coll.task == "biology" and coll.name == "bright/biology"
    assert coll.qrels == {"0": {"gold-1": 1}, "1": {"gold-2": 1}}
    assert coll.excluded == {"0": {"leak-1"}, "1": set()}  # "N/A" placeholders dropped
    assert any("examples/biology.jsonl:3: invalid JSON" in p for p in coll.problems)
    assert any("biology.jsonl:4: excluded_ids overlap gold_ids" in p for p in coll.problems)
    long = load_bright(bright_root, "biology", long_documents=True)
    assert long.task == "biology:long" and set(long.corpus) == {"long-1"} and long.qrels["0"] == {"long-1": 1}
    reasoned = load_bright(bright_root, "biology", reasoning="gpt4")
    assert reasoned.queries["0"].startswith("Plants need light because") and len(reasoned.queries) == 2
    with pytest.raises(FileNotFoundError, match=r"no pony\.jsonl"):
        load_bright(bright_root, "pony")


def test_bright_excluded_ids_are_removed_before_scoring(bright_root):
    """leak-1 repeats the query: BM25 ranks it first, BRIGHT's exclusion removes it, gold-1 moves to rank 1."""
    coll = load_bright(bright_root, "biology")
    bm25 = BM25Retriever(coll.corpus.values())
    assert bm25.search(coll.queries["0"], k=1)[0].id == "leak-1"
    result = evaluate_retrieval(coll, bm25, top_k=3, metrics=["mrr@10", "ndcg@10"])
    assert "leak-1" not in result.run["0"] and len(result.run["0"]) <= 3
    assert result.scores.per_query["0"]["mrr@10"] == 1.0
    tasks = evaluate_tasks([coll], bm25, top_k=3, metrics=["mrr@10"])
    assert tasks["average"] == {"mrr@10": result.scores.mean["mrr@10"]}


def test_dense_run_applies_the_task_instruction(bright_root, tiny_encoder):
    """The query side uses the BRIGHT task's instruction, the document side the document prefix."""
    coll = load_bright(bright_root, "biology")
    run = dense_run(tiny_encoder, coll, top_k=10)
    qids, ids = list(coll.queries), list(coll.corpus)
    docs = tiny_encoder.encode_documents([coll.corpus[d].text for d in ids])
    with_task = tiny_encoder.encode_queries([coll.queries[q] for q in qids], task="biology") @ docs.T
    generic = tiny_encoder.encode_queries([coll.queries[q] for q in qids]) @ docs.T
    for i, q in enumerate(qids):
        expected = {ids[j]: float(with_task[i, j]) for j in range(len(ids))}
        assert run[q] == pytest.approx(expected, abs=1e-6)
    assert not np.allclose(with_task, generic, atol=1e-4)  # the instruction changes the query embedding
    # an explicit instruction overrides the collection's task
    custom = dense_run(tiny_encoder, coll, top_k=10, instruction="Retrieve biology passages")
    assert custom["0"] != pytest.approx(run["0"], abs=1e-6)
    with pytest.raises(ValueError, match="doc_embeddings has 2 rows for 5 documents"):
        dense_run(tiny_encoder, coll, doc_embeddings=docs[:2])


def test_chromastore_index_gives_the_exact_dense_run(bright_root, tiny_encoder, tmp_path):
    """A real embedded ChromaStore built from the collection retrieves what exact cosine does (same task
    instruction, same document prefix), with the excluded ids removed."""
    from reasonir_rag.index.store import ChromaStore

    coll = load_bright(bright_root, "biology")
    store = ChromaStore("bright-biology", encoder=tiny_encoder, path=tmp_path / "chroma")
    store.add(list(coll.corpus.values()))
    via_store = evaluate_retrieval(coll, store, top_k=3)
    exact = evaluate_retrieval(coll, tiny_encoder, top_k=3)
    assert via_store.settings["kind"] == "index" and exact.settings["kind"] == "dense"
    assert via_store.run.keys() == exact.run.keys()
    for qid, scores in exact.run.items():
        assert via_store.run[qid] == pytest.approx(scores, abs=1e-4)
    assert "leak-1" not in via_store.run["0"] and len(via_store.run["0"]) == 3
    assert via_store.scores.mean == pytest.approx(exact.scores.mean)


def test_evaluate_retrieval_rejects_a_non_retriever(bright_root):
    with pytest.raises(TypeError, match="retriever must be an encoder"):
        evaluate_retrieval(load_bright(bright_root, "biology"), object())


def test_subsample_keeps_relevant_documents(scifact_sample):
    small = subsample(scifact_sample, n_queries=5, n_other_docs=10, seed=1)
    assert len(small.queries) == 5
    for judged in small.qrels.values():
        assert all(d in small.corpus for d, r in judged.items() if r > 0)
    assert subsample(scifact_sample, n_queries=5, n_other_docs=10, seed=1).corpus.keys() == small.corpus.keys()
    assert isinstance(next(iter(small.corpus.values())), Document)
