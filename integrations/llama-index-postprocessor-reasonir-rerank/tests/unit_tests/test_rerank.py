"""ReasonIRReranker: the core reranker behind LlamaIndex's postprocessor interface, with its rerank events.

Parity runs on the tiny random Qwen2 with the real Qwen2.5 tokenizer (deterministic, local); the real server is in
integration_tests/test_own_llms.py (and the retrievers package's integration_tests/test_query_engine.py).
"""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.pipeline.reranker import QwenReranker
from reasonir_rag.types import ScoredDocument
from tests.llamaindex_fixtures import GRAM_QUESTION

from llama_index.postprocessor.reasonir_rerank import ReasonIRReranker


def _nodes(openstax_modules, n=5):
    return [NodeWithScore(node=TextNode(id_=r["id"], text=r["text"], metadata={"section": r["section"]}),
                          score=0.9 - 0.1 * i) for i, r in enumerate(openstax_modules[:n])]


@pytest.fixture(scope="module")
def core(tiny_qwen_llm):
    return QwenReranker(tiny_qwen_llm, max_doc_tokens=256)


def test_scores_and_order_are_the_core_rerankers(core, openstax_modules):
    rerank = ReasonIRReranker(reranker=core, top_n=3)
    assert isinstance(rerank, BaseNodePostprocessor) and rerank.model == core.llm.model_name
    nodes = _nodes(openstax_modules)
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    expected = core.rerank(GRAM_QUESTION, [ScoredDocument(str(i), t, {}, n.score)
                                           for i, (t, n) in enumerate(zip(texts, nodes, strict=True))], top_n=3)
    got = rerank.postprocess_nodes(nodes, query_str=GRAM_QUESTION)
    assert [g.node.node_id for g in got] == [nodes[int(e.id)].node.node_id for e in expected]
    assert [g.score for g in got] == pytest.approx([e.score for e in expected], abs=1e-6)
    for g, e in zip(got, expected, strict=True):
        assert g.node.metadata["rerank_score"] == pytest.approx(e.metadata["rerank_score"], abs=1e-6)
        assert "rerank_score" not in g.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "retrieval_score" not in g.node.metadata


def test_keep_retrieval_score_and_top_n(core, openstax_modules):
    nodes = _nodes(openstax_modules)
    original = {n.node.node_id: n.score for n in nodes}
    got = ReasonIRReranker(reranker=core, keep_retrieval_score=True).postprocess_nodes(nodes, query_str=GRAM_QUESTION)
    assert len(got) == 5  # top_n=None keeps every node
    assert [g.score for g in got] == sorted((g.score for g in got), reverse=True)
    for g in got:
        assert g.node.metadata["retrieval_score"] == original[g.node.node_id]
        assert g.score == pytest.approx(0.5 * g.node.metadata["rerank_score"] / 5 + 0.5 * original[g.node.node_id])
        assert "retrieval_score" not in g.node.get_content(metadata_mode=MetadataMode.LLM)
    assert len(ReasonIRReranker(reranker=core, top_n=2).postprocess_nodes(_nodes(openstax_modules),
                                                                     query_str=GRAM_QUESTION)) == 2


def test_emits_llamaindex_rerank_events_and_callbacks(core, openstax_modules, events):
    debug = LlamaDebugHandler()
    rerank = ReasonIRReranker(reranker=core, top_n=2, callback_manager=CallbackManager([debug]))
    nodes = _nodes(openstax_modules, 4)
    got = rerank.postprocess_nodes(nodes, query_bundle=QueryBundle(GRAM_QUESTION))
    (start,), (end,) = events.of(ReRankStartEvent), events.of(ReRankEndEvent)
    assert start.top_n == 2 and start.model_name == core.llm.model_name and start.query.query_str == GRAM_QUESTION
    assert [n.node.node_id for n in start.nodes] == [n.node.node_id for n in nodes]
    assert [n.node.node_id for n in end.nodes] == [n.node.node_id for n in got]
    pairs = debug.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 1 and pairs[0][1].payload["nodes"] == got


def test_async_matches_sync(core, openstax_modules):
    rerank = ReasonIRReranker(reranker=core, top_n=3)
    sync = rerank.postprocess_nodes(_nodes(openstax_modules), query_str=GRAM_QUESTION)
    got = asyncio.run(rerank.apostprocess_nodes(_nodes(openstax_modules), query_str=GRAM_QUESTION))
    assert [(g.node.node_id, g.score) for g in got] == [(s.node.node_id, s.score) for s in sync]


def test_built_from_an_llm_with_reranker_arguments(tiny_qwen_llm, openstax_modules):
    rerank = ReasonIRReranker(tiny_qwen_llm, top_n=2, alpha=1.0, max_doc_tokens=128)
    assert rerank.reranker.alpha == 1.0 and rerank.reranker.max_doc_tokens == 128
    got = rerank.postprocess_nodes(_nodes(openstax_modules), query_str=GRAM_QUESTION)
    assert all(g.score == pytest.approx(g.node.metadata["rerank_score"] / 5) for g in got)


# ------------------------------------------------------------------ bad input: the core's policy, through LlamaIndex
def test_an_empty_node_scores_zero_and_the_rest_are_ranked(core, openstax_modules, caplog):
    nodes = [*_nodes(openstax_modules, 3), NodeWithScore(node=TextNode(id_="blank", text="   "), score=0.95)]
    got = ReasonIRReranker(reranker=core).postprocess_nodes(nodes, query_str=GRAM_QUESTION)
    blank = next(g for g in got if g.node.node_id == "blank")
    assert blank.node.metadata["rerank_score"] == 0.0 and blank.node.metadata["rerank_error"] == "empty document"
    assert blank.score == pytest.approx(0.5 * 0.95)
    assert len(got) == 4 and all("rerank_error" not in g.node.metadata for g in got if g is not blank)


def test_nodes_without_a_score_are_ranked_by_the_llm_alone(core, openstax_modules):
    nodes = [NodeWithScore(node=n.node, score=None) for n in _nodes(openstax_modules, 3)]
    got = ReasonIRReranker(reranker=core, keep_retrieval_score=True).postprocess_nodes(nodes, query_str=GRAM_QUESTION)
    for g in got:
        assert g.node.metadata["retrieval_score"] is None
        assert g.score == pytest.approx(g.node.metadata["rerank_score"] / 5)  # not capped at 0.5
    mixed = _nodes(openstax_modules, 3)
    mixed[2] = NodeWithScore(node=mixed[2].node, score=None)
    lowest = min(mixed[0].score, mixed[1].score)
    got = {g.node.node_id: g for g in ReasonIRReranker(reranker=core).postprocess_nodes(mixed, query_str=GRAM_QUESTION)}
    last = got[mixed[2].node.node_id]
    assert last.score == pytest.approx(0.5 * last.node.metadata["rerank_score"] / 5 + 0.5 * lowest)


def test_bad_queries_and_scores_are_named(core, openstax_modules):
    rerank = ReasonIRReranker(reranker=core)
    with pytest.raises(ValueError, match="needs the query"):
        rerank.postprocess_nodes(_nodes(openstax_modules, 2))
    with pytest.raises(InvalidInputError, match="non-empty string"):
        rerank.postprocess_nodes(_nodes(openstax_modules, 2), query_str="  ")
    nodes = _nodes(openstax_modules, 3)
    nodes[1].score = float("nan")
    with pytest.raises(InvalidInputError, match="#1"):
        rerank.postprocess_nodes(nodes, query_str=GRAM_QUESTION)
    assert rerank.postprocess_nodes([], query_str=GRAM_QUESTION) == []


def test_bad_construction(core, tiny_qwen_llm):
    with pytest.raises(ValueError, match="not both"):
        ReasonIRReranker(tiny_qwen_llm, reranker=core)
    with pytest.raises(TypeError, match="QwenReranker"):
        ReasonIRReranker(reranker="Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(ValueError):
        ReasonIRReranker(reranker=core, top_n=0)
    with pytest.raises(ValueError, match="alpha"):
        ReasonIRReranker(tiny_qwen_llm, alpha=2.0)


def test_a_llamaindex_llm_is_taken_in_the_mode_it_can_serve(caplog):
    from llama_index.llms.openai_like import OpenAILike

    def llm(**kwargs):
        return OpenAILike(model="smollm2", api_base="http://127.0.0.1:9/v1", api_key="EMPTY", **kwargs)

    with caplog.at_level("WARNING", logger="reasonir_rag.llm.adapter"):
        plain = ReasonIRReranker(llm(is_chat_model=True))
    assert (plain.reranker.mode, plain.reranker.template) == ("generate", "chat")
    assert sum("returns no log-probs" in r.getMessage() for r in caplog.records) == 1
    assert (ReasonIRReranker(llm(is_chat_model=True, logprobs=True)).reranker.mode,
            ReasonIRReranker(llm(logprobs=True, top_logprobs=5)).reranker.template) == ("logits", "raw")
    assert ReasonIRReranker(llm(logprobs=True, top_logprobs=5)).reranker.llm.top_logprobs == 5
    with pytest.raises(TypeError, match=r"a LlamaIndex LLM \(e.g. OpenAILike.*OpenAICompatibleLLM"):
        ReasonIRReranker(3.5)


def test_qwen_rerank_is_the_deprecated_name_of_reasonir_reranker(core, openstax_modules):
    """The name LangChain's reranker has; ``QwenRerank`` still imports and works, and building one emits one
    warning that names the new name and points at the caller's line."""
    from llama_index.postprocessor.reasonir_rerank import QwenRerank

    with pytest.warns(DeprecationWarning, match=r"QwenRerank is deprecated: use ReasonIRReranker") as caught:
        old = QwenRerank(reranker=core, top_n=2)
    assert len(caught) == 1 and caught[0].filename == __file__
    assert isinstance(old, ReasonIRReranker) and old.class_name() == "ReasonIRReranker"
    nodes = _nodes(openstax_modules, 3)
    new = ReasonIRReranker(reranker=core, top_n=2).postprocess_nodes(nodes, query_str=GRAM_QUESTION)
    got = old.postprocess_nodes(_nodes(openstax_modules, 3), query_str=GRAM_QUESTION)
    assert [(n.node.node_id, n.score) for n in got] == [(n.node.node_id, n.score) for n in new]
