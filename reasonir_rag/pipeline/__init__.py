"""What runs around retrieval at query time: the query rewriter and the Qwen2.5 reranker."""
