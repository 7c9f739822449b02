"""Documents into a searchable index: loaders (JSONL, text, Markdown), token-aware chunking, the Chroma store."""
