"""Ranking metrics equal pytrec_eval (trec_eval) query by query on the same runs, ties included."""

from __future__ import annotations

import random

import pytest

from reasonir_rag.eval.ir_metrics import evaluate_run, exclude_from_run, parse_metric, query_metrics, rank

pytrec_eval = pytest.importorskip("pytrec_eval")

OURS_TO_TREC = {"ndcg@10": "ndcg_cut_10", "ndcg@5": "ndcg_cut_5", "recall@10": "recall_10",
                "recall@100": "recall_100", "precision@10": "P_10", "mrr": "recip_rank"}


def _random_collection(seed: int, n_queries: int = 60, n_docs: int = 400):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2]) for d in judged}
        if not any(r > 0 for r in qrels[qid].values()):
            qrels[qid][judged[0]] = 1
        retrieved = rng.sample(docs, rng.randint(5, 150))
        if q % 3 == 0:  # coarse scores: many ties, broken by trec_eval's doc id rule
            run[qid] = {d: float(rng.randint(0, 5)) for d in retrieved}
        else:
            run[qid] = {d: rng.random() for d in retrieved}
        if q % 4 == 0:  # make sure some relevant documents are found
            for d in judged[:2]:
                run[qid][d] = 10.0 + rng.random()
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_pytrec_eval_per_query(seed):
    qrels, run = _random_collection(seed)
    ours = evaluate_run(qrels, run, list(OURS_TO_TREC))
    trec = pytrec_eval.RelevanceEvaluator(qrels, set(OURS_TO_TREC.values())).evaluate(run)
    assert set(ours.per_query) == set(trec)
    for qid, values in ours.per_query.items():
        for name, trec_name in OURS_TO_TREC.items():
            assert values[name] == pytest.approx(trec[qid][trec_name], abs=1e-9), (qid, name)
    for name, trec_name in OURS_TO_TREC.items():
        mean = sum(v[trec_name] for v in trec.values()) / len(trec)
        assert ours.mean[name] == pytest.approx(mean, abs=1e-12)


def test_mrr_at_k_equals_recip_rank_of_the_cut_run():
    qrels, run = _random_collection(5)
    cut = {q: {d: scores[d] for d in rank(scores)[:10]} for q, scores in run.items()}
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
    ours = evaluate_run(qrels, run, ["mrr@10"])
    for qid in trec:
        assert ours.per_query[qid]["mrr@10"] == pytest.approx(trec[qid]["recip_rank"], abs=1e-12)


def test_hand_computed_ndcg_and_missing_queries(caplog):
    qrels = {"a": {"x": 2, "y": 1, "z": 0}, "b": {"w": 1}, "c": {"v": 0}}
    run = {"a": {"y": 0.9, "n": 0.8, "x": 0.7}}
    got = evaluate_run(qrels, run, ["ndcg@10", "recall@10", "mrr@10"])
    import math

    dcg = 1 / math.log2(2) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert got.per_query["a"] == pytest.approx({"ndcg@10": dcg / idcg, "recall@10": 1.0, "mrr@10": 1.0})
    # "b" has a relevant document but no results: it scores 0 and is reported; "c" has none: not evaluated
    assert got.per_query["b"] == {"ndcg@10": 0.0, "recall@10": 0.0, "mrr@10": 0.0}
    assert got.n_queries == 2 and got.missing_from_run == ["b"]
    assert got.mean["recall@10"] == 0.5
    assert "1 of 2 judged queries have no results" in caplog.text


def test_exclusions_and_metric_names():
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    assert exclude_from_run(run, {"q": ["a"]}) == {"q": {"b": 2.0, "c": 1.0}}
    assert query_metrics({"b": 1}, rank(exclude_from_run(run, {"q": ["a"]})["q"]), ["mrr"]) == {"mrr": 1.0}
    assert parse_metric("nDCG@10") == ("ndcg", 10) and parse_metric("mrr") == ("mrr", None)
    for bad in ("ndcg", "map@10", "recall@0"):
        with pytest.raises(ValueError, match="metric"):
            parse_metric(bad)
