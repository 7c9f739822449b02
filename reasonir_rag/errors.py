"""Every error reasonir-rag raises on purpose, under one base: ``except ReasonIRError`` catches them all.

Each also derives from the builtin a caller would expect (``ValueError`` for a bad value, ``OSError`` for a file
or server problem, ...), so ``except ValueError`` keeps working. The CLI prints any of them as one line on stderr
and exits with code 2. Messages say what was wrong and how to fix it, and never carry a secret or GPQA text.
"""

from __future__ import annotations

from typing import Any


class ReasonIRError(Exception):
    """The base of every error the package raises on purpose."""


class InvalidInputError(ReasonIRError, ValueError, TypeError):
    """An argument, a setting or an input record that cannot be used: the message names it and why."""


class DataNotFoundError(ReasonIRError, FileNotFoundError):
    """A file or folder the call needs (a corpus, a dataset, a model folder) does not exist."""


class StorageError(ReasonIRError, OSError):
    """A cache, journal, model folder or download cannot be read or written (permissions, disk, network)."""


class ServiceUnavailableError(ReasonIRError, ConnectionError):
    """A server (Chroma) could not be reached, after the retries where there are any."""


class MissingDependencyError(ReasonIRError, ImportError):
    """An optional package is not installed: the message names the extra that brings it."""


class UnsupportedError(ReasonIRError, NotImplementedError):
    """What was asked for is not possible with this model or backend (a chat template it lacks, say)."""


class UsageError(ReasonIRError, RuntimeError):
    """Calls made in an order or an environment that cannot work (a step skipped, a filesystem without WAL)."""


class EncoderOutOfMemoryError(ReasonIRError, MemoryError):
    """The device ran out of memory even for the smallest batch."""


class EncoderMismatchError(ReasonIRError, ValueError):
    """A collection or folder holds vectors from another encoder than the one given."""


class CollectionNotFoundError(ReasonIRError, LookupError):
    """The Chroma collection does not exist (and ``create=False`` was asked)."""


class GPQAPasswordError(ReasonIRError, ValueError):
    """GPQA's zip could not be decrypted with the password given."""


class LLMError(ReasonIRError, RuntimeError):
    """A backend could not produce an answer (after its retries, where it retries).

    ``transient`` is True when the cause is one a later try may fix (server down or restarting, 5xx, 429,
    timeout) and the backend's own retries are spent: a batch job should stop and resume later rather than
    send its remaining requests to a server that is not there.
    """

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class RerankError(ReasonIRError, RuntimeError):
    """A document could not be scored and ``on_error="raise"``, or the reranker's backend is unavailable."""


class BulkEmbeddingError(ReasonIRError, RuntimeError):
    """A bulk run ended with texts not embedded; everything else reached the sink and a rerun resumes by ids."""

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result
