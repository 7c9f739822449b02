"""The seams between the layers, as Protocols: what each part needs of the next, and nothing more.

The store needs an :class:`Encoder`; the pipeline and the evaluator need an :class:`LLM`, a :class:`SearchIndex`,
a :class:`Rewriter` and a :class:`Reranker`. The project's classes implement them (``ReasonIREncoder``,
``OpenAIEmbeddingsEncoder``; ``ChromaStore``, ``BM25Retriever``; ``QueryRewriter``; ``QwenReranker``;
``TransformersLLM``, ``OpenAICompatibleLLM``), and so can a user's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from reasonir_rag.types import Document, Message, PrefixKind, Prompt, Rewrite, ScoredDocument

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """Texts to L2-normalised float32 vectors: questions with the query prefix, passages with the document one."""

    @property
    def dim(self) -> int: ...

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What must match between the vectors of an index and of its queries (model, dims, prefixes, pooling)."""
        ...

    def encode_queries(self, texts: Sequence[str] | str, *, instruction: str | None = None,
                       task: str | None = None, show_progress: bool | None = None) -> np.ndarray: ...

    def encode_documents(self, texts: Sequence[str] | str, *, show_progress: bool | None = None) -> np.ndarray: ...


@runtime_checkable
class TokenizingEncoder(Encoder, Protocol):
    """An :class:`Encoder` that also tells how many tokens a text takes after its prefix (the rewriter fits its
    output to that budget)."""

    @property
    def tokenizer(self) -> Any: ...

    @property
    def document_prefix(self) -> str: ...

    def query_prefix(self, *, instruction: str | None = None, task: str | None = None) -> str: ...

    def text_budget(self, prefix: str = "") -> int: ...

    def count_tokens(self, text: str) -> int: ...


@runtime_checkable
class SearchIndex(Protocol):
    """Questions to ranked documents, best first."""

    def search_many(self, queries: Sequence[str], k: int = 10, *, task: str | None = None,
                    instruction: str | None = None, where: Mapping[str, Any] | None = None,
                    prefix_kind: PrefixKind = "query") -> list[list[ScoredDocument]]: ...


@runtime_checkable
class LLM(Protocol):
    """What the rewriter and the reranker need from a language model."""

    model_name: str

    def generate(
        self, prompts: Sequence[Prompt], *, max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
        seed: int | None = None, stop: Sequence[str] | None = None, return_exceptions: bool = False,
        frequency_penalty: float = 0.0,
    ) -> list[Any]:
        """One completion per prompt, in order (an Exception in its place with ``return_exceptions``);
        ``frequency_penalty`` as OpenAI defines it."""
        ...

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str], *, shared_prefix: str = "",
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Log-probs of single-token ``candidates`` at the position right after each prompt.

        String prompts are read as ``shared_prefix + prompt``; backends that can, compute the shared prefix
        once. A candidate missing from the result had no log-prob available (outside a server's top-k).
        """
        ...

    def render_chat(
        self, messages: Sequence[Message], *, add_generation_prompt: bool = True,
        continue_final_message: bool = False,
    ) -> str:
        """The chat template applied to ``messages`` (raises NotImplementedError without a local template)."""
        ...

    def tokenize(self, text: str) -> list[int] | None:
        """Token ids of ``text`` without special tokens, or None when the backend has no local tokenizer."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (an estimate when the backend has no local tokenizer)."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The start of ``text`` that fits in ``max_tokens`` tokens."""
        ...


@runtime_checkable
class AsyncLLM(LLM, Protocol):
    """An :class:`LLM` with native async calls (``OpenAICompatibleLLM`` on ``AsyncOpenAI``, the framework adapters on
    their framework's async API). The pipeline's ``a...`` methods await these; an LLM without them runs its sync
    methods in a worker thread."""

    async def agenerate(
        self, prompts: Sequence[Prompt], *, max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
        seed: int | None = None, stop: Sequence[str] | None = None, return_exceptions: bool = False,
        frequency_penalty: float = 0.0,
    ) -> list[Any]: ...

    async def anext_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str], *, shared_prefix: str = "",
        return_exceptions: bool = False,
    ) -> list[Any]: ...


@runtime_checkable
class Rewriter(Protocol):
    """A question to a longer, information-rich query (or a hypothetical passage)."""

    llm: LLM

    def rewrite_queries(self, queries: Sequence[str]) -> list[Rewrite]: ...

    def prompt(self, query: str) -> Prompt:
        """What the rewriter sends its LLM for ``query`` (for token accounting)."""
        ...


@runtime_checkable
class Reranker(Protocol):
    """Candidates to the best ``top_n``, rescored."""

    llm: LLM

    def rerank(self, query: str, docs: Sequence[ScoredDocument | Document | str], top_n: int | None = None,
               task: str | None = None) -> list[ScoredDocument]: ...

    def prompts(self, query: str, texts: Sequence[str], task: str | None = None) -> list[Any]:
        """What the reranker sends its LLM for each text (for token accounting)."""
        ...


__all__ = ["LLM", "AsyncLLM", "Encoder", "Message", "Prompt", "Reranker", "Rewriter", "SearchIndex",
           "TokenizingEncoder"]
