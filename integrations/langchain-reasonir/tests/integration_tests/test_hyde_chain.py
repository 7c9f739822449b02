"""``hyde_rewriter | ReasonIRRetriever``: SmolLM2 (real weights, in-process) writes the passage, which is searched
with the DOCUMENT prefix, exactly as ReasonIRRetriever(rewriter=...) searches it."""

from __future__ import annotations

from reasonir_rag.pipeline.rewriter import QueryRewriter

from langchain_reasonir import ReasonIRQueryRewriter, ReasonIRRetriever

Q = "How does the speed of sound in air depend on the temperature?"


def test_a_piped_hyde_rewrite_is_searched_as_a_document(smollm2_local, minilm_store, rewrite_cache):
    hyde = ReasonIRQueryRewriter(rewriter=QueryRewriter(smollm2_local, style="hyde", max_tokens=24,
                                                        cache=rewrite_cache, encoder=minilm_store.encoder))
    passage = hyde.invoke(Q)
    assert passage.prefix_kind == "document" and passage.original == Q and len(passage) > len(Q)
    piped = (hyde | ReasonIRRetriever(store=minilm_store, k=3)).invoke(Q)
    inside = ReasonIRRetriever(store=minilm_store, k=3, rewriter=hyde).invoke(Q)
    expected = minilm_store.search_many([str(passage)], 3, prefix_kind="document")[0]
    assert [d.id for d in piped] == [d.id for d in inside] == [h.id for h in expected]
