"""The end-to-end demo: index OpenStax passages, show the pipeline on a few MMLU questions, measure RAG.

Stages (each timed; the CLI prints each section as it finishes):

1. **index**: the OpenStax passages in an embedded Chroma collection, one collection per encoder. A rerun
   reuses it: unchanged passages are recognised by their stored text hash and cost no model time.
2. **showcase**: for a few MMLU questions whose answers are in the textbooks, the rewrite
   (:class:`~reasonir_rag.pipeline.rewriter.QueryRewriter`), the top passages before and after reranking
   (:class:`~reasonir_rag.pipeline.reranker.QwenReranker`, logits mode) and the reader's answer.
3. **evaluation**: closed-book against RAG on about 50 MMLU questions from the subjects the corpus covers,
   through :class:`~reasonir_rag.eval.runner.RAGEvaluator`; the table, the JSON and the chart go to
   ``<out>/eval/``.

Every LLM result (showcase and evaluation) goes through one SQLite journal (``<out>/journal.sqlite``), so a
killed demo resumes where it stopped and a second run makes no LLM call at all.

Profiles: ``offline`` runs on a 2-core CPU with small stand-ins: all-MiniLM-L6-v2 (the ``minilm`` preset,
128 tokens per passage, MiniLM's training length) for ReasonIR-8B and SmolLM2-135M-Instruct for
Qwen2.5-7B-Instruct as rewriter, reranker and reader. ``reasonir`` is the paper's setup: ReasonIR-8B and
Qwen2.5-7B-Instruct from the hub on a GPU, or any OpenAI-compatible server given by URL for the LLM. Both
take the same code path; only the model names differ, and each can be overridden (arguments, or the
``REASONIR_DEMO_ENCODER`` / ``REASONIR_DEMO_LLM`` / ``REASONIR_DEMO_LLM_URL`` environment variables).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reasonir_rag.demo.config import (
    EVAL_SUBJECTS,
    PAPER_ENCODER,
    DemoConfig,
    default_data_dir,
    default_mmlu_dir,
    resolve_config,
)
from reasonir_rag.demo.showcase import ShowcaseItem, run_showcase, showcase_questions
from reasonir_rag.errors import DataNotFoundError, InvalidInputError
from reasonir_rag.index.loaders import LoadReport, load_documents
from reasonir_rag.index.records import AddStats
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.sample_data import jsonl_files

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- results
@dataclass
class IndexResult:
    encoder: str
    max_length: int
    collection: str
    chroma_path: Path
    data_dir: Path
    load: LoadReport
    add: AddStats
    count: int


@dataclass
class LLMCalls:
    """Prompts sent to the LLM in this run (0 on a rerun: everything comes from the journal)."""

    generate: int = 0
    score: int = 0


@dataclass
class DemoResult:
    """Everything the demo did, for the CLI to print or a program to inspect."""

    config: DemoConfig
    index: IndexResult | None = None
    showcase: list[ShowcaseItem] = field(default_factory=list)
    report: dict[str, Any] | None = None
    report_files: dict[str, str] = field(default_factory=dict)
    calls: LLMCalls = field(default_factory=LLMCalls)
    journal_path: Path | None = None
    journal_entries: int = 0  # results in the journal after the run
    journal_added: int = 0  # of which this run added
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # this process's CPU time per stage (all threads)

    def summary(self) -> dict[str, Any]:
        """What this run did, as ``<out>/summary.json`` keeps it: a rerun shows ``encoded`` and ``llm_calls`` 0."""
        index = self.index
        return {
            "profile": self.config.profile,
            "index": None if index is None else {
                "collection": index.collection, "passages_read": index.load.records, "count": index.count,
                "encoded": index.add.added, "unchanged": index.add.unchanged},
            "showcase": len(self.showcase),
            "eval_questions": self.report["conditions"][0]["n"] if self.report else 0,
            "llm_calls": asdict(self.calls),
            "journal": {"entries": self.journal_entries, "added": self.journal_added},
            "seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
        }


# ------------------------------------------------------------------------------------------- the LLM
class CountingLLM:
    """An LLM backend that counts the prompts it is sent; everything else is the wrapped backend's.

    ``repr`` and ``model_name`` are the backend's, so journal keys do not change with the wrapper.
    """

    def __init__(self, llm: Any, calls: LLMCalls):
        self._llm, self._calls = llm, calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def __repr__(self) -> str:
        return repr(self._llm)

    def generate(self, prompts: Sequence[Any], **kwargs: Any) -> list[Any]:
        self._calls.generate += len(prompts)
        return self._llm.generate(prompts, **kwargs)

    def next_token_logprobs(self, prompts: Sequence[Any], candidates: Sequence[str], **kwargs: Any) -> list[Any]:
        self._calls.score += len(prompts)
        return self._llm.next_token_logprobs(prompts, candidates, **kwargs)


def load_demo_llm(config: DemoConfig) -> Any:
    """A served model (``llm_url``; key from ``OPENAI_API_KEY``) or a local transformers model."""
    from reasonir_rag.llm import OpenAICompatibleLLM, TransformersLLM

    if config.llm_url:
        if config.llm is None:
            raise InvalidInputError("--llm-url needs --llm, the served model name")
        timeouts: dict[str, Any] = {} if config.llm_timeout is None else {"timeout": config.llm_timeout}
        return OpenAICompatibleLLM(config.llm, base_url=config.llm_url, **timeouts)
    if config.llm is None:
        from reasonir_rag.offline import smollm2_folder

        return TransformersLLM(str(smollm2_folder()), device=config.device, batch_size=config.batch_size)
    return TransformersLLM(config.llm, device=config.device, batch_size=config.batch_size)


def load_demo_encoder(config: DemoConfig) -> Any:
    from reasonir_rag.encoding.encoder import ReasonIREncoder

    kwargs: dict[str, Any] = {"device": config.device, "max_length": config.max_length, "show_progress": False}
    return ReasonIREncoder.from_pretrained(config.encoder, **kwargs)


# ---------------------------------------------------------------------------------------------- stages
def build_index(encoder: Any, config: DemoConfig, data_dir: Path, out_dir: Path,
                show_progress: bool | None = None) -> tuple[ChromaStore, IndexResult]:
    """Index the passages of ``data_dir`` (skipping unchanged ones) into the encoder's collection."""
    files = jsonl_files(data_dir) if data_dir.is_dir() else []
    if not files:
        raise DataNotFoundError(
            f"no OpenStax passages (*.jsonl or *.jsonl.gz) in {data_dir}; set REASONIR_DATA to the folder "
            "that holds openstax/, or pass --data"
        )
    chroma_path = out_dir / "chroma"
    store = ChromaStore(config.collection, encoder=encoder, path=chroma_path, show_progress=show_progress)
    report = LoadReport()
    added = store.add(_passages(files, config.passages, report), show_progress=show_progress)
    result = IndexResult(encoder=encoder.config.name, max_length=encoder.config.max_length,
                         collection=config.collection, chroma_path=chroma_path, data_dir=data_dir, load=report,
                         add=added, count=store.count())
    return store, result


def _passages(files: list[Path], limit: int | None, report: LoadReport) -> list[Any]:
    """Every passage of ``files``, or the first ``limit`` spread evenly over them (a smoke-sized index)."""
    if limit is None:
        return list(load_documents(files, report=report))
    share, extra = divmod(limit, len(files))
    return [doc for i, file in enumerate(files)
            for doc in itertools.islice(load_documents([file], report=report), share + (i < extra))]


def eval_dataset(mmlu_dir: Path, n: int, seed: int = 0) -> Any:
    """``n`` MMLU test questions from :data:`EVAL_SUBJECTS`, spread evenly over the subjects (seeded)."""
    from reasonir_rag.eval.mmlu import load_mmlu

    per_subject = max(1, math.ceil(n / len(EVAL_SUBJECTS)))
    return load_mmlu(mmlu_dir, split="test", subjects=list(EVAL_SUBJECTS), per_subject=per_subject,
                     sample=n, seed=seed)


def corpus_record(store: Any, data_dir: Path) -> dict[str, Any]:
    """What names the corpus in the report: the collection, its size and the passage files' sha256."""
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in jsonl_files(data_dir)}
    return {"collection": store.collection_name, "documents": store.count(), "files_sha256": files}


# ------------------------------------------------------------------------------------------------- run
def run_demo(
    profile: str = "offline",
    *,
    config: DemoConfig | None = None,
    data_dir: str | Path | None = None,
    mmlu_dir: str | Path | None = None,
    out_dir: str | Path = ".demo",
    showcase_limit: int | None = None,
    show_progress: bool | None = None,
    on_stage: Callable[[str, DemoResult], None] | None = None,
    stop_after_index: bool = False,
) -> DemoResult:
    """Index, showcase and evaluate (see the module docstring); ``on_stage(name, result)`` after each stage
    (``"index"``, ``"models"``, ``"showcase"``, ``"eval"``) so that a caller can show progress."""
    from reasonir_rag.eval.journal import Journal
    from reasonir_rag.eval.report import write_report
    from reasonir_rag.eval.runner import CONDITIONS, EvalSettings, RAGEvaluator
    from reasonir_rag.pipeline.reranker import QwenReranker
    from reasonir_rag.pipeline.rewriter import QueryRewriter

    config = config or resolve_config(profile)
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    mmlu = Path(mmlu_dir).expanduser() if mmlu_dir is not None else default_mmlu_dir()
    out = Path(out_dir).expanduser()
    result = DemoResult(config=config)
    seconds = result.seconds
    notify = on_stage or (lambda _name, _result: None)

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return fn()
        finally:
            seconds[name] = time.perf_counter() - start
            result.cpu_seconds[name] = time.process_time() - cpu

    # questions first: a missing MMLU folder fails before any model loads
    showcase = showcase_questions(mmlu, showcase_limit) if showcase_limit != 0 and not stop_after_index else []
    dataset = eval_dataset(mmlu, config.eval_questions) if config.eval_questions and not stop_after_index else None

    encoder = timed("load encoder", lambda: load_demo_encoder(config))
    logger.info("encoder %s%s", encoder.config.name,
                f" (stand-in for {PAPER_ENCODER})" if config.stand_ins else "")
    store, result.index = timed("index", lambda: build_index(encoder, config, folder, out, show_progress))
    notify("index", result)
    if stop_after_index:
        _write_json(out / "summary.json", result.summary())
        return result

    llm = CountingLLM(timed("load LLM", lambda: load_demo_llm(config)), result.calls)
    rewriter = QueryRewriter(llm, max_tokens=config.rewrite_tokens, encoder=encoder)
    reranker = QwenReranker(llm, mode="logits", max_doc_tokens=config.max_doc_tokens)
    journal = Journal(out / "journal.sqlite")
    result.journal_path = journal.path
    before = len(journal)
    notify("models", result)
    try:
        if showcase:
            result.showcase = timed("showcase", lambda: run_showcase(
                showcase, store=store, rewriter=rewriter, reranker=reranker, reader=llm, journal=journal,
                config=config))
            notify("showcase", result)
        if dataset is not None:
            wanted = config.conditions
            settings = EvalSettings(conditions=wanted, top_k=config.k, candidates=config.candidates,
                                    max_tokens=config.reader_tokens, concurrency=config.batch_size,
                                    max_passage_tokens=config.max_passage_tokens,
                                    show_progress=bool(show_progress))
            uses = {"rewriter": any(CONDITIONS.get(c, (0, 0))[0] for c in wanted),
                    "reranker": any(CONDITIONS.get(c, (0, 0))[1] for c in wanted)}
            evaluator = RAGEvaluator(reader=llm, journal=journal, retriever=store,
                                     rewriter=rewriter if uses["rewriter"] else None,
                                     reranker=reranker if uses["reranker"] else None, settings=settings)

            def evaluate() -> dict[str, Any]:
                report = evaluator.report(dataset, "mmlu", corpus=corpus_record(store, folder))
                report["run"]["demo"] = {"profile": config.profile, "stand_ins": config.stand_ins,
                                         "encoder": config.encoder_label, "llm": config.llm_label}
                result.report_files = {k: str(v) for k, v in write_report(report, out / "eval").items()}
                return report

            result.report = timed("eval", evaluate)
            notify("eval", result)
    finally:
        result.journal_entries = len(journal)
        result.journal_added = result.journal_entries - before
        journal.close()
    _write_json(out / "summary.json", result.summary())
    return result


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
