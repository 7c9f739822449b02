"""Bulk corpus embedding over a Ray cluster, written to a Chroma server or to parquet files."""
