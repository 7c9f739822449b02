"""A LlamaIndex query engine over OpenStax textbook passages with ReasonIR retrieval, fully offline.

    [ReasonIRQueryTransform] -> VectorStoreIndex (ChromaVectorStore, ReasonIREmbedding) -> ReasonIRReranker
    -> OpenAILike

Runs on a laptop CPU: ~300 passages from four OpenStax chapters are indexed with the ``minilm`` preset (pass
``--model-name reasonir/ReasonIR-8B`` for ReasonIR-8B on a GPU) through LlamaIndex's own ``VectorStoreIndex`` and
``ChromaVectorStore``.

- With ``--base-url`` (or ``OPENAI_BASE_URL``): a full query engine. ``ReasonIRReranker`` scores the candidates through
  the server (ReasonIR's pointwise 0-5 reranker) and LlamaIndex's ``OpenAILike`` writes the answer; ``--rewrite``
  puts ReasonIR's query rewriting in front (a ``TransformQueryEngine``). Any OpenAI-compatible server that returns
  log-probs works, e.g. vLLM with SmolLM2-135M-Instruct:
  ``python -m vllm.entrypoints.openai.api_server --model DIR --served-model-name smollm2 --port 8000``.
- Without: the retriever-only path (top passages, no LLM).

    python cookbook/02_llamaindex_query_engine.py
    python cookbook/02_llamaindex_query_engine.py --base-url http://127.0.0.1:8000/v1 --model smollm2 --rewrite \
        --question "Why does a person sweat when the body gets too hot?"

Passages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
from pathlib import Path
from typing import Any

import chromadb
from llama_index.core import Document, StorageContext, VectorStoreIndex, get_response_synthesizer
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.query_engine import RetrieverQueryEngine, TransformQueryEngine
from llama_index.core.schema import NodeWithScore
from llama_index.embeddings.reasonir import ReasonIREmbedding
from llama_index.postprocessor.reasonir_rerank import ReasonIRReranker
from llama_index.retrievers.reasonir import ReasonIRQueryTransform
from llama_index.vector_stores.chroma import ChromaVectorStore

from reasonir_rag.index.loaders import load_documents
from reasonir_rag.sample_data import openstax_book, openstax_dir

logger = logging.getLogger("cookbook.llamaindex_query_engine")

DATA = openstax_dir()  # the shipped OpenStax books (CC BY 4.0), or $REASONIR_DATA/openstax
CHAPTERS = {  # file -> chapter: four topics, ~75 passages each
    "anatomy-physiology": "An Introduction to the Human Body",
    "chemistry-bundle": "Thermochemistry",
    "university-physics-bundle": "Newton's Laws of Motion",
    "microbiology": "How We See the Invisible World",
}
NOT_EMBEDDED = ["chapter", "module", "license", "source"]  # kept on the node, left out of the embedded text
NOT_READ = ["module", "license", "source"]  # left out of what the reader LLM sees


def load_passages(folder: Path, total: int) -> list[Document]:
    """The first ``total / 4`` passages of each chapter in :data:`CHAPTERS`, as LlamaIndex documents."""
    per_chapter = max(1, total // len(CHAPTERS))
    docs: list[Document] = []
    for name, chapter in CHAPTERS.items():
        rows = (d for d in load_documents(openstax_book(name, folder)) if d.metadata.get("chapter") == chapter)
        docs += [Document(id_=d.id, text=d.text, metadata=d.metadata, excluded_embed_metadata_keys=NOT_EMBEDDED,
                          excluded_llm_metadata_keys=NOT_READ) for d in itertools.islice(rows, per_chapter)]
    return docs


def build_index(docs: list[Document], embed_model: ReasonIREmbedding, persist: Path | None) -> VectorStoreIndex:
    """LlamaIndex's own classes: Chroma (explicit embeddings only, cosine space) behind a VectorStoreIndex."""
    settings = chromadb.config.Settings(anonymized_telemetry=False)
    client = (chromadb.PersistentClient(path=str(persist), settings=settings) if persist
              else chromadb.EphemeralClient(settings=settings))
    collection = client.get_or_create_collection("openstax-llamaindex-demo", embedding_function=None,
                                                 configuration={"hnsw": {"space": "cosine"}})
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    if collection.count() >= len(docs):  # persisted by an earlier run
        return VectorStoreIndex.from_vector_store(storage.vector_store, embed_model=embed_model)
    splitter = SentenceSplitter(chunk_size=512, chunk_overlap=0)  # passages are <= ~180 words: one node each
    return VectorStoreIndex.from_documents(docs, storage_context=storage, embed_model=embed_model,
                                          transformations=[splitter])


def build_engine(index: VectorStoreIndex, embed_model: ReasonIREmbedding, args: argparse.Namespace) -> Any:
    from llama_index.llms.openai_like import OpenAILike

    from reasonir_rag.llm import OpenAICompatibleLLM

    api_key = os.environ.get("OPENAI_API_KEY", "EMPTY")
    scorer = OpenAICompatibleLLM(args.model, base_url=args.base_url, api_key=api_key)  # reranker and rewriter
    reader = OpenAILike(model=args.model, api_base=args.base_url, api_key=api_key, is_chat_model=True,
                        context_window=args.context_window, max_tokens=args.max_tokens, temperature=0.0)
    engine = RetrieverQueryEngine(
        retriever=index.as_retriever(similarity_top_k=args.k),
        node_postprocessors=[ReasonIRReranker(scorer, top_n=args.top_n, keep_retrieval_score=True,
                                        max_prompt_tokens=args.context_window - 16)],
        response_synthesizer=get_response_synthesizer(llm=reader),
    )
    if not args.rewrite:
        return engine
    transform = ReasonIRQueryTransform.from_llm(scorer, embed_model, max_tokens=args.rewrite_tokens)
    return TransformQueryEngine(engine, query_transform=transform)


def _show(nodes: list[NodeWithScore]) -> None:
    for i, hit in enumerate(nodes, 1):
        meta = hit.node.metadata
        rerank = f", rerank {meta['rerank_score']:.2f}/5" if "rerank_score" in meta else ""
        print(f"[{i}] {meta.get('book')} / {meta.get('section')} (score {hit.score:.3f}{rerank})")
        print(f"    {hit.node.get_content()[:160]}...")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default="How does the body keep its temperature stable when it gets too hot?")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"),
                        help="an OpenAI-compatible server (…/v1); without it only the retriever runs")
    parser.add_argument("--model", default=os.environ.get("REASONIR_READER_MODEL", "smollm2"),
                        help="the served model name (with --base-url)")
    parser.add_argument("--model-name", default="minilm", help="the encoder: 'minilm' or a ReasonIR checkpoint")
    parser.add_argument("--passages", type=int, default=300, help="how many OpenStax passages to index")
    parser.add_argument("--data", type=Path, default=DATA, help="the OpenStax JSONL folder")
    parser.add_argument("--persist", type=Path, default=None, help="keep the Chroma index in this folder")
    parser.add_argument("--k", type=int, default=10, help="candidates retrieved (and reranked)")
    parser.add_argument("--top-n", type=int, default=3, help="passages kept after reranking")
    parser.add_argument("--max-tokens", type=int, default=128, help="answer length")
    parser.add_argument("--context-window", type=int, default=2048, help="the served model's context length")
    parser.add_argument("--rewrite", action="store_true", help="rewrite the question first (ReasonIR's rewriter)")
    parser.add_argument("--rewrite-tokens", type=int, default=128, help="length of the rewritten query's reasoning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    embed_model = ReasonIREmbedding(args.model_name)
    index = build_index(load_passages(args.data, args.passages), embed_model, args.persist)
    print(f"Question: {args.question}\n")
    if not args.base_url:
        logger.info("no --base-url / OPENAI_BASE_URL: retriever only (no reranking, no answer)")
        _show(index.as_retriever(similarity_top_k=args.top_n).retrieve(args.question))
    else:
        response = build_engine(index, embed_model, args).query(args.question)
        _show(response.source_nodes)
        print(f"\nAnswer: {str(response).strip()}")
    print("\nPassages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
