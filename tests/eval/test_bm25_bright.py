"""BRIGHT's BM25 recipe (Lucene BM25 k1 0.9 b 0.4, Porter, Lucene's English stopwords) beside bm25s' defaults:
the analysis, the parameters, a ranking that differs, the fingerprint, the CLI option and the report."""

from __future__ import annotations

import json

import pytest

from reasonir_rag.errors import InvalidInputError
from reasonir_rag.eval.bm25 import (
    BM25_CONFIGS,
    BRIGHT,
    LUCENE_ENGLISH_STOPWORDS,
    BM25Config,
    BM25Retriever,
    bm25_config,
)
from reasonir_rag.eval.retrieval import evaluate_retrieval
from reasonir_rag.types import Document

DOCS = [
    Document("runs", "She runs every morning before work."),
    Document("cook", "He cooks dinner for the family."),
    Document("swim", "Swimmers swim laps in the pool."),
]


def test_lucene_english_stopwords_are_the_33_of_lucene():
    assert len(LUCENE_ENGLISH_STOPWORDS) == 33 == len(set(LUCENE_ENGLISH_STOPWORDS))
    assert {"a", "the", "such", "into", "will", "with", "their"} <= set(LUCENE_ENGLISH_STOPWORDS)
    assert not {"i", "from", "have", "was not"} & set(LUCENE_ENGLISH_STOPWORDS)


def test_bright_parameters_and_the_bm25s_defaults():
    assert sorted(BM25_CONFIGS) == ["bm25s", "bright", "bright-script"]
    assert (BRIGHT.method, BRIGHT.k1, BRIGHT.b, BRIGHT.stemmer, BRIGHT.lowercase) == ("lucene", 0.9, 0.4,
                                                                                     "porter", True)
    assert BRIGHT.stopwords == LUCENE_ENGLISH_STOPWORDS
    default = bm25_config("bm25s")
    assert (default.method, default.k1, default.b, default.stemmer) == ("lucene", 1.5, 0.75, None)
    assert bm25_config(BRIGHT) is BRIGHT and BM25Retriever(DOCS).config is default  # bm25s stays the default
    with pytest.raises(ValueError, match="unknown BM25 configuration 'pyserini'"):
        bm25_config("pyserini")



def _gensim_scores(corpus_tokens, query_tokens):
    """BRIGHT's retrieval_bm25 (retrievers.py) on already analysed tokens, with gensim itself."""
    from gensim.corpora import Dictionary
    from gensim.models import LuceneBM25Model
    from gensim.similarities import SparseMatrixSimilarity

    dictionary = Dictionary(corpus_tokens)
    model = LuceneBM25Model(dictionary=dictionary, k1=0.9, b=0.4)
    index = SparseMatrixSimilarity(model[list(map(dictionary.doc2bow, corpus_tokens))], num_docs=len(corpus_tokens),
                                   num_terms=len(dictionary), normalize_queries=False, normalize_documents=False)
    return [index[model[dictionary.doc2bow(q)]] for q in query_tokens]


def test_bright_script_scores_are_gensims_as_brights_script_computes_them():
    """On SciFact's first 300 abstracts and queries long and short (repeated terms, terms the corpus lacks), the
    scores are gensim's LuceneBM25Model through SparseMatrixSimilarity, and the ranking differs from "bright"."""
    from reasonir_rag.eval.ir_data import load_beir
    from reasonir_rag.sample_data import scifact_dir

    collection = load_beir(scifact_dir())
    docs = list(collection.corpus.values())[:300]
    queries = [q for q in list(collection.queries.values())[:40]]
    queries += [" ".join(queries[:6]) * 3, "zygomorphic quasicrystal " + docs[0].text]
    script = BM25Retriever(docs, config="bright-script")
    expected = _gensim_scores(BRIGHT.tokenize([d.text for d in docs]), BRIGHT.tokenize(queries))
    differs = 0
    for query, want in zip(queries, expected, strict=True):
        got = {h.id: h.score for h in script.search(query, k=len(docs))}
        want_by_id = {d.id: float(w) for d, w in zip(docs, want, strict=True) if w > 0}
        assert set(got) == set(want_by_id)
        assert all(abs(got[i] - want_by_id[i]) <= 1e-4 * max(1.0, want_by_id[i]) for i in got)
        lucene = [h.id for h in BM25Retriever(docs, config="bright").search(query, k=10)]
        differs += lucene != [h.id for h in script.search(query, k=10)]
    assert differs > 0  # idf twice and the query's own saturation change some rankings


def test_bright_script_needs_lucenes_scorer():
    with pytest.raises(InvalidInputError, match="query_weighting"):
        BM25Config("x", k1=0.9, b=0.4, method="robertson", query_weighting="bm25")
    with pytest.raises(InvalidInputError, match="'bag' or 'bm25'"):
        BM25Config("x", k1=0.9, b=0.4, query_weighting="gensim")

def test_bright_tokens_are_stemmed_lowercased_without_stopwords():
    assert BRIGHT.tokenize(["running runs ran"]) == [["run", "run", "ran"]]
    assert BRIGHT.tokenize(["The Cats ARE in THE Garden, such is it"]) == [["cat", "garden"]]
    assert BRIGHT.tokenize(["Connected generalizations; studies caresses"]) == [["connect", "gener", "studi",
                                                                                 "caress"]]
    # close to Lucene's StandardTokenizer + EnglishPossessiveFilter: single characters kept, 's dropped,
    # numbers and contractions stay one token
    assert BRIGHT.tokenize(["The dog's x = 3.14 of 1,000 don't"]) == [["dog", "x", "3.14", "1,000", "don't"]]
    assert BRIGHT.tokenize(["", "the and is"]) == [[], []]


def test_bm25s_config_tokenizes_as_bm25s_itself():
    import bm25s

    text = "The dog's x = 3.14 of 1,000 don't; Running RUNS ran, such is it."
    ours = bm25_config("bm25s").tokenize([text])
    assert ours == bm25s.tokenize([text], stopwords="en", return_ids=False, show_progress=False)
    assert ours == [["dog", "14", "000", "don", "running", "runs", "ran"]]


def test_stemming_decides_the_ranking():
    """'running' meets 'runs' only through the Porter stemmer."""
    bright, plain = BM25Retriever(DOCS, config="bright"), BM25Retriever(DOCS, config="bm25s")
    assert [h.id for h in bright.search("running", k=3)] == ["runs"]
    assert plain.search("running", k=3) == []
    assert [h.id for h in plain.search("runs", k=3)] == ["runs"]


def test_k1_and_b_change_the_ranking():
    """A short document with one match against a long one with three: a low b (0.4) penalises length less,
    so the long document wins; bm25s' b 0.75 puts the short one first. Same analysis, only k1 and b differ."""
    docs = [Document("short", "enzyme catalysis"),
            Document("long", "enzyme enzyme enzyme " + " ".join(f"filler{i}" for i in range(40))),
            Document("none", "unrelated words only here")]
    bright_like = BM25Retriever(docs, config=BM25Config("lucene-k1-b", k1=0.9, b=0.4))
    defaults = BM25Retriever(docs, config="bm25s")
    assert [h.id for h in bright_like.search("enzyme", k=3)] == ["long", "short"]
    assert [h.id for h in defaults.search("enzyme", k=3)] == ["short", "long"]


def test_fingerprint_names_the_config_without_an_address():
    from reasonir_rag.eval.runner import _describe

    bright, plain = BM25Retriever(DOCS, config="bright"), BM25Retriever(DOCS, config="bm25s")
    fp = bright.fingerprint
    assert fp["config"] == "bright" and (fp["k1"], fp["b"], fp["stemmer"]) == (0.9, 0.4, "porter")
    assert fp["stopwords"] == "lucene-english" and fp["documents"] == 3 and fp["retriever"] == "bm25s"
    json.dumps(fp)
    assert _describe(bright) != _describe(plain)
    assert _describe(bright) == _describe(BM25Retriever(DOCS, config="bright"))  # stable across instances
    assert _describe(bright) != _describe(BM25Retriever(DOCS[:2], config="bright"))  # the corpus counts
    for text in (_describe(bright), repr(bright)):
        assert " at 0x" not in text
    assert repr(bright).startswith("BM25Retriever(config='bright', method='lucene', k1=0.9, b=0.4")


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture()
def bright_root(tmp_path):
    _write_jsonl(tmp_path / "documents" / "biology.jsonl",
                 [{"id": d.id, "content": d.text} for d in DOCS])
    _write_jsonl(tmp_path / "examples" / "biology.jsonl",
                 [{"id": "0", "query": "Who goes running?", "gold_ids": ["runs"], "excluded_ids": []}])
    return tmp_path


@pytest.fixture()
def beir_root(tmp_path):
    root = tmp_path / "beir"
    _write_jsonl(root / "corpus.jsonl", [{"_id": d.id, "title": "", "text": d.text} for d in DOCS])
    _write_jsonl(root / "queries.jsonl", [{"_id": "0", "text": "Who goes running?"}])
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n0\truns\t1\n")
    return root


def test_report_names_the_config(bright_root):
    from reasonir_rag.eval.ir_data import load_bright

    coll = load_bright(bright_root, "biology")
    result = evaluate_retrieval(coll, BM25Retriever(coll.corpus.values(), config="bright"), metrics=["mrr@10"])
    described = result.to_dict()["settings"]["retriever"]
    assert described["config"] == "bright" and (described["k1"], described["b"]) == (0.9, 0.4)
    assert result.scores.mean["mrr@10"] == 1.0


def _cli_json(args, capsys):
    from reasonir_rag.cli.main import main

    assert main(["eval", "retrieval", *args, "--retriever", "bm25", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_bm25_option_and_defaults(bright_root, beir_root, capsys):
    bright = ["--bright", str(bright_root), "--task", "biology"]
    out = _cli_json(bright, capsys)  # BRIGHT data: BRIGHT's recipe by default
    assert out["retriever"]["config"] == "bright" and out["retriever"]["stemmer"] == "porter"
    assert out["metrics"]["mrr@10"] == 1.0
    out = _cli_json([*bright, "--bm25", "bm25s"], capsys)
    assert out["retriever"]["config"] == "bm25s" and out["metrics"]["mrr@10"] == 0.0  # no stemming: no match
    out = _cli_json(["--beir", str(beir_root)], capsys)  # elsewhere: bm25s' defaults
    assert out["retriever"]["config"] == "bm25s" and out["retriever"]["k1"] == 1.5
    out = _cli_json(["--beir", str(beir_root), "--bm25", "bright"], capsys)
    assert out["retriever"]["config"] == "bright" and out["metrics"]["mrr@10"] == 1.0


def test_cli_text_report_and_misuse(bright_root, capsys):
    from reasonir_rag.cli.main import main

    assert main(["eval", "retrieval", "--bright", str(bright_root), "--task", "biology", "--retriever", "bm25"]) == 0
    assert "retriever: BM25 'bright' (lucene, k1=0.9, b=0.4, stemmer=porter)" in capsys.readouterr().out
    assert main(["eval", "retrieval", "--bright", str(bright_root), "--task", "biology", "--bm25", "bright"]) == 2
    assert "needs --retriever bm25" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "retrieval", "--bright", str(bright_root), "--task", "biology", "--retriever", "bm25",
              "--bm25", "pyserini"])
