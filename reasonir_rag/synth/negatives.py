"""Hard negatives, both optional: BM25-mined (the released script) and LLM-written (the paper's).

BM25: BRIGHT's Lucene recipe (k1 0.9, b 0.4) over the same passages; the negative is the first hit at rank 21
or lower that is neither the positive, a passage excluded for the query, nor the positive's text. Ranks 1-20 are
skipped because near the top an unjudged passage is often relevant too (labels are incomplete). A corpus too
small to reach rank 21 gets none: the manifest counts them.

LLM: given the query and its positive, a passage that shares vocabulary but not the reasoning link; one that
copies the positive (n-gram overlap above the copy threshold) is dropped, since it may answer the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reasonir_rag.eval.bm25 import BM25Retriever
from reasonir_rag.types import Document

BM25_FIRST_RANK = 21  # the released script's
BM25_DEPTH = 100


def bm25_negatives(passages: Sequence[Document], queries: Sequence[str], positives: Sequence[str],
                   excluded: Sequence[set[str]]) -> list[dict[str, Any] | None]:
    """For each query, ``{"id", "rank", "score"}`` of its BM25 negative, or None."""
    if not queries:
        return []
    retriever = BM25Retriever(passages, config="bright")
    texts = {d.id: d.text.strip() for d in passages}
    depth = min(len(passages), BM25_DEPTH)
    out: list[dict[str, Any] | None] = []
    for hits, positive, drop in zip(retriever.search_many(list(queries), depth), positives, excluded, strict=True):
        chosen = None
        for rank, hit in enumerate(hits, start=1):
            if rank < BM25_FIRST_RANK or hit.id == positive or hit.id in drop:
                continue
            if texts[hit.id] == texts[positive]:
                continue
            chosen = {"id": hit.id, "rank": rank, "score": round(hit.score, 4)}
            break
        out.append(chosen)
    return out
