"""The ``reasonir-rag`` command: one module per command group (``index``, ``demo``, ``llm``, ``eval``), the parser
and the error handling in :mod:`reasonir_rag.cli.main`, the shared options in :mod:`reasonir_rag.cli.common`."""
