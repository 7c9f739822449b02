"""ReasonIR's Qwen pointwise reranker as a LlamaIndex node postprocessor."""

from llama_index.postprocessor.reasonir_rerank.base import QwenRerank

__all__ = ["QwenRerank"]
