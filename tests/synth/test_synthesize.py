"""synthesize end to end on shipped OpenStax passages: the BRIGHT layout that the loader and `eval retrieval`
read unchanged, the manifest, retries, negatives, the fallback selector and bad input."""

from __future__ import annotations

import json

import pytest

from reasonir_rag.cli.main import main
from reasonir_rag.errors import InvalidInputError, LLMError
from reasonir_rag.eval.bm25 import BM25Retriever
from reasonir_rag.eval.ir_data import load_bright
from reasonir_rag.eval.retrieval import evaluate_retrieval
from reasonir_rag.synth import CallSettings, SynthesisSettings, synthesize
from reasonir_rag.synth.prompts import QUERY_PROMPT_SHA256


def _settings(classifier, **overrides):
    base = {"task": "biology", "seeds": 6, "classifier": str(classifier), "chunk_tokens": 256,
            "show_progress": False}
    return SynthesisSettings(**{**base, **overrides})


def test_output_loads_in_the_bright_loader_and_eval_retrieval(openstax_corpus, standin_classifier, scripted_llm,
                                                                tmp_path, capsys):
    out = tmp_path / "set"
    result = synthesize(openstax_corpus, scripted_llm, out, _settings(standin_classifier, llm_negatives=True))
    m = json.loads((out / "manifest.json").read_text())
    assert m["seed_selection"]["kind"] == "stand-in" and "stand-in" in m["seed_selection"]["name"]
    assert m["prompts"]["query_sha256"] == QUERY_PROMPT_SHA256 and m["llm"]["model"] == "scripted-stand-in"
    assert len(m["seeds"]) == 6 and m["counts"]["seeds"] == 6
    assert m["counts"]["seeds_with_retries"] == 1  # the first seed's greedy reply had no JSON
    assert m["counts"]["llm_calls"]["made"] == scripted_llm.calls == 6 + 1 + result.examples
    kept = m["counts"]["kept"]
    assert kept == result.examples and kept + sum(m["counts"]["rejected"].values()) == 6

    collection = load_bright(out, "biology")
    assert len(collection.queries) == kept and collection.task == "biology" and not collection.problems
    examples = [json.loads(line) for line in (out / "examples" / "biology.jsonl").read_text().splitlines()]
    seeds = {s["id"] for s in m["seeds"]}
    for e in examples:
        assert collection.qrels[e["id"]] == {e["seed_id"]: 1} and e["seed_id"] in seeds
        assert e["checks"]["reason"] is None and e["checks"]["copy_overlap"] <= 0.5
        kinds = {n["kind"] for n in e["checks"]["negatives"]}
        assert kinds == {"bm25", "llm"}, e["checks"]
        bm25 = next(n for n in e["checks"]["negatives"] if n["kind"] == "bm25")
        assert bm25["rank"] >= 21 and bm25["id"] in e["negatives"] and bm25["id"] != e["seed_id"]
        assert f"{e['id']}-negative" in collection.corpus
    scores = evaluate_retrieval(collection, BM25Retriever(list(collection.corpus.values()), config="bright")).scores
    assert 0.0 < scores.mean["ndcg@10"] <= 1.0  # the scripted queries reuse their passage's words

    assert main(["eval", "retrieval", "--bright", str(out), "--task", "biology", "--encoder", "minilm",
                 "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["collection"]["queries"] == kept and 0.0 <= report["metrics"]["ndcg@10"] <= 1.0

    again = synthesize(openstax_corpus, scripted_llm, out, _settings(standin_classifier, llm_negatives=True))
    assert again.manifest["counts"]["llm_calls"]["made"] == 0 and scripted_llm.calls == 6 + 1 + kept  # all resumed
    assert (out / "examples" / "biology.jsonl").read_text().splitlines() == [json.dumps(e) for e in examples]


def test_seeds_without_json_are_reported_and_the_others_kept(openstax_corpus, standin_classifier, tmp_path):
    from tests.synth.conftest import ScriptedLLM

    llm = ScriptedLLM(no_json_first=2)
    result = synthesize(openstax_corpus, llm, tmp_path, _settings(standin_classifier, seeds=4,
                                                                    calls=CallSettings(attempts=1)))
    assert result.manifest["counts"]["seeds_without_json"] == 2 and llm.calls == 4
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejected[:2]] == ["no usable JSON after 1 attempt(s)"] * 2
    assert rejected[0]["last_reply"].startswith("Let me think")
    assert 1 <= result.examples <= 2 and len(load_bright(tmp_path, "biology").queries) == result.examples


def test_length_selection_when_the_classifier_cannot_be_loaded(openstax_corpus, scripted_llm, tmp_path, caplog):
    settings = _settings("HuggingFaceTB/fineweb-edu-classifier", seeds=3, bm25_negatives=False)  # hub is offline
    result = synthesize(openstax_corpus, scripted_llm, tmp_path, settings)
    selection = result.manifest["seed_selection"]
    assert selection["kind"] == "length" and "fineweb-edu-classifier" in selection["fallback_reason"]
    assert "falling back to length-only seed selection" in caplog.text
    assert all(s["score"] >= 50 for s in result.manifest["seeds"])  # word counts, over the floor


def _cli(args, capsys):
    code = main(["synthesize", *args, "--llm", "openai:unused", "--base-url", "http://127.0.0.1:9/v1",
                 "--task", "biology", "--no-progress"])
    return code, capsys.readouterr().err


def test_bad_corpus_gives_one_clear_line(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, err = _cli([str(empty), "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and "has no passages" in err and "needs at least 2" in err and "Traceback" not in err
    one = tmp_path / "one.jsonl"
    text = "Enzymes lower the activation energy of reactions by stabilising the transition state. " * 5
    one.write_text(json.dumps({"id": "a", "text": text}) + "\n" + json.dumps({"id": "b", "text": text}) + "\n")
    code, err = _cli([str(one), "--out", str(tmp_path / "b")], capsys)  # two records, one distinct passage
    assert code == 2 and "only one distinct passage" in err
    code, err = _cli([str(tmp_path / "missing"), "--out", str(tmp_path / "c")], capsys)
    assert code == 2 and "missing" in err


def test_unknown_task_is_named():
    with pytest.raises(InvalidInputError, match="unknown BRIGHT task 'mine'; known: aops, biology"):
        SynthesisSettings(task="mine")


def test_an_llm_that_never_returns_json_gives_a_clear_error_and_keeps_its_replies(openstax_corpus, standin_classifier,
                                                                                   smollm2_dir, tmp_path):
    from reasonir_rag.eval.journal import Journal
    from reasonir_rag.llm import TransformersLLM

    llm = TransformersLLM(str(smollm2_dir), device="cpu")  # real SmolLM2; 2 new tokens can never hold the JSON
    settings = _settings(standin_classifier, seeds=2, calls=CallSettings(max_tokens=2, attempts=2))
    with pytest.raises(LLMError, match=r"never returned a usable JSON object for any of 2 seed\(s\) \(2 attempt"):
        synthesize(openstax_corpus, llm, tmp_path, settings)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["error"] == "no query was kept" and manifest["counts"]["seeds_without_json"] == 2
    assert manifest["counts"]["llm_calls"]["made"] == 4
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 2 and all(r["attempts"] == 2 and r["last_reply"] for r in rejected)
    with Journal(tmp_path / "journal.sqlite") as journal:
        assert len(journal) == 4 and all("reply" in v for _, _, v in journal.items("synth-query"))
    assert not (tmp_path / "examples").exists()
