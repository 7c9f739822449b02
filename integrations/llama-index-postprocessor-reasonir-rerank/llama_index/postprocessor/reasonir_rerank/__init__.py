"""ReasonIR's Qwen pointwise reranker as a LlamaIndex node postprocessor: ``ReasonIRReranker``.

``QwenRerank`` (the name before; LangChain's class is ``ReasonIRReranker`` too) still imports: a deprecated subclass,
the same postprocessor, whose construction emits one ``DeprecationWarning`` naming the new name.
"""

from llama_index.postprocessor.reasonir_rerank.base import QwenRerank, ReasonIRReranker

__all__ = ["QwenRerank", "ReasonIRReranker"]
