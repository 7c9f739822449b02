"""The five-condition RAG evaluation end to end on real small parts: OpenStax passages in a real embedded
Chroma (MiniLM), SmolLM2-135M-Instruct as rewriter, reranker and reader (local transformers). Checks that
the report is complete and consistent, not the accuracy, and that a rerun is served by the journal."""

from __future__ import annotations

import json
from itertools import islice

import pytest

from reasonir_rag.eval.journal import Journal
from reasonir_rag.eval.mmlu import load_mmlu
from reasonir_rag.eval.runner import ALL_CONDITIONS, EvalSettings, RAGEvaluator
from reasonir_rag.sample_data import jsonl_files, read_jsonl

SUBJECTS = ["high_school_biology", "high_school_chemistry", "high_school_physics"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """SmolLM2 generation on a 2-core box: with two OpenMP threads and any other busy process (the vLLM
    engine, a parallel build) every small op waits; one thread was several times faster in that case."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def openstax_store(tmp_path_factory, minilm_encoder, repo_data):
    from reasonir_rag.index.store import ChromaStore
    from reasonir_rag.types import Document

    docs = []
    for path in jsonl_files(repo_data / "openstax"):
        for rec in islice(read_jsonl(path), 0, 1500, 25):  # 60 passages a book, spread over each book
            docs.append(Document(rec["id"], rec["text"], {"book": rec["book"], "section": rec["section"]}))
    store = ChromaStore("openstax-eval", encoder=minilm_encoder, path=tmp_path_factory.mktemp("chroma"))
    store.add(docs)
    return store


@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    from reasonir_rag.llm import TransformersLLM

    return TransformersLLM(str(smollm2_dir), device="cpu")


@pytest.fixture(scope="module")
def questions(repo_data):
    return load_mmlu(repo_data / "mmlu", subjects=SUBJECTS, sample=3, seed=5)


class RefusingReader:
    """A reader that must not be called: the second run has to come entirely from the journal."""

    def __init__(self, model_name: str):
        self.model_name = model_name

    def generate(self, prompts, **kwargs):
        raise AssertionError(f"the reader was called again for {len(prompts)} prompts")

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        return text


def _check_report(report, questions, store):
    """Complete and consistent: every condition, every question, the right cost stages, the run record."""
    rows = {row["name"]: row for row in report["conditions"]}
    assert list(rows) == list(ALL_CONDITIONS)
    for name, row in rows.items():
        assert row["n"] == len(questions) == 3
        assert 0 <= row["correct"] <= row["n"] and 0 <= row["unextracted"] <= row["n"]
        lo, hi = row["ci"]
        assert lo <= row["accuracy"] <= hi
        assert set(row["per_subject"]) <= set(SUBJECTS)
        assert sum(s["n"] for s in row["per_subject"].values()) == 3
        tokens = row["cost"]["tokens_per_question"]
        assert tokens["reader"] > 0
        expected_stages = {"reader"} | ({"encoder"} if name != "closed-book" else set()) \
            | ({"rewriter"} if "rewrite" in name else set()) | ({"reranker"} if "rerank" in name else set())
        assert set(tokens) == expected_stages, (name, tokens)
        if name == "closed-book":
            assert row["vs_baseline"]["absolute_gain"] == 0
        else:
            assert row["vs_baseline"]["n_paired"] == 3
            assert 0 <= row["vs_baseline"]["mcnemar"]["p_value"] <= 1
    # rag prompts carry passages, so they cost the reader more tokens than closed-book
    reader_tokens = {name: row["cost"]["tokens_per_question"]["reader"] for name, row in rows.items()}
    assert reader_tokens["rag"] > reader_tokens["closed-book"]
    run = report["run"]
    assert run["prompt"]["template_hash"] and run["reader"] and run["corpus"]["documents"] == store.count()
    assert run["dataset"]["selection"]["subjects"] == sorted(SUBJECTS)


def test_five_conditions_report_is_complete_and_resumes_from_the_journal(
        tmp_path, openstax_store, smollm2, questions, minilm_encoder):
    from reasonir_rag.pipeline.reranker import QwenReranker
    from reasonir_rag.pipeline.rewriter import QueryRewriter

    rewriter = QueryRewriter(smollm2, max_tokens=24, encoder=minilm_encoder)
    reranker = QwenReranker(smollm2, max_doc_tokens=128)
    settings = EvalSettings(candidates=4, max_tokens=24, show_progress=False)
    journal = Journal(tmp_path / "journal.sqlite")
    evaluator = RAGEvaluator(reader=smollm2, journal=journal, retriever=openstax_store, rewriter=rewriter,
                             reranker=reranker, settings=settings)
    report = evaluator.report(questions, "mmlu", corpus={"documents": openstax_store.count()},
                              out_dir=tmp_path / "out")

    _check_report(report, questions, openstax_store)
    for kind in ("json", "md", "png"):
        assert (tmp_path / "out" / f"report.{kind}").stat().st_size > 0

    # A second run over the same journal calls no model at all and gives the same report.
    again = RAGEvaluator(reader=RefusingReader(smollm2.model_name), journal=journal, retriever=openstax_store,
                         rewriter=rewriter, reranker=reranker, settings=settings).report(questions, "mmlu")
    for before, after in zip(report["conditions"], again["conditions"], strict=True):
        assert (before["name"], before["correct"], before["unextracted"]) == \
            (after["name"], after["correct"], after["unextracted"])
        assert before["cost"]["tokens_per_question"] == after["cost"]["tokens_per_question"]


def test_a_failed_rewrite_is_not_journaled_as_an_answer(tmp_path, openstax_store, smollm2, questions,
                                                        minilm_encoder):
    """The rewriter falls back to the question when its server is down; in a run that fallback must not be
    recorded as the rewrite, or a resumed run would never redo it. The run stops; the rag answers are kept."""
    from reasonir_rag.errors import LLMError
    from reasonir_rag.llm import OpenAICompatibleLLM
    from reasonir_rag.pipeline.rewriter import QueryRewriter
    from tests.servers import free_port

    dead = OpenAICompatibleLLM("m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    journal = Journal(tmp_path / "journal.sqlite")
    evaluator = RAGEvaluator(reader=smollm2, journal=journal, retriever=openstax_store,
                             rewriter=QueryRewriter(dead, max_tokens=8, encoder=minilm_encoder),
                             settings=EvalSettings(conditions=("rag", "rag+rewrite"), candidates=3, max_tokens=8,
                                                   show_progress=False))
    with pytest.raises(LLMError, match="rewriting failed") as failed:
        evaluator.run(questions, "mmlu")
    assert failed.value.transient
    assert list(journal.items("rewrite")) == []
    assert len(list(journal.items("reader"))) == len(questions)  # the rag condition's answers are kept


def test_a_reranker_whose_server_is_down_stops_the_run_instead_of_journaling_zeros(
        tmp_path, openstax_store, smollm2, smollm2_dir, questions):
    """Zeros from an unreachable server would be journaled as real rerank scores and never redone on resume."""
    from reasonir_rag.errors import LLMError
    from reasonir_rag.llm import OpenAICompatibleLLM
    from reasonir_rag.pipeline.reranker import QwenReranker
    from tests.servers import free_port

    dead = OpenAICompatibleLLM("m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0,
                               tokenizer=str(smollm2_dir))
    journal = Journal(tmp_path / "journal.sqlite")
    evaluator = RAGEvaluator(reader=smollm2, journal=journal, retriever=openstax_store,
                             reranker=QwenReranker(dead, max_doc_tokens=64),
                             settings=EvalSettings(conditions=("rag+rerank",), candidates=3, max_tokens=8,
                                                   show_progress=False))
    with pytest.raises(LLMError) as failed:
        evaluator.run(questions, "mmlu")
    assert failed.value.transient
    assert list(journal.items("rerank")) == [] and len(list(journal.items("retrieval"))) == len(questions)


def test_conditions_need_their_parts(tmp_path, smollm2):
    with pytest.raises(ValueError, match="need a retriever and a rewriter"):
        RAGEvaluator(reader=smollm2, journal=Journal(tmp_path / "j.sqlite"),
                     settings=EvalSettings(conditions=("closed-book", "rag+rewrite")))
    with pytest.raises(ValueError, match="unknown conditions"):
        EvalSettings(conditions=("open-book",))


def test_five_conditions_through_the_vllm_server(tmp_path, openstax_store, vllm_server, smollm2_dir, questions,
                                                 minilm_encoder):
    """The same run with SmolLM2 served by the real local vLLM server as rewriter, reranker and reader."""
    from reasonir_rag.llm import OpenAICompatibleLLM
    from reasonir_rag.pipeline.reranker import QwenReranker
    from reasonir_rag.pipeline.rewriter import QueryRewriter

    served = OpenAICompatibleLLM(vllm_server.model, base_url=vllm_server.base_url, tokenizer=str(smollm2_dir))
    evaluator = RAGEvaluator(
        reader=served, journal=Journal(tmp_path / "journal.sqlite"), retriever=openstax_store,
        rewriter=QueryRewriter(served, max_tokens=24, encoder=minilm_encoder),
        reranker=QwenReranker(served, max_doc_tokens=128),
        settings=EvalSettings(candidates=4, max_tokens=24, show_progress=False, concurrency=4))
    report = evaluator.report(questions, "mmlu", corpus={"documents": openstax_store.count()})
    _check_report(report, questions, openstax_store)
    assert vllm_server.model in json.dumps(report["run"]["reader"])
