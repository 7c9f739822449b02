"""Faults in the middle of real work: a vLLM server SIGKILLed mid-evaluation, a Chroma server restarted
mid-ingest, out-of-memory mid-batch, an unwritable cache folder and a full disk. Each run either finishes or
fails with a clear error, then resumes without losing or repeating anything."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from reasonir_rag.errors import LLMError, StorageError
from reasonir_rag.eval.journal import Journal
from reasonir_rag.eval.mmlu import load_mmlu
from reasonir_rag.eval.runner import EvalSettings, RAGEvaluator
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.sample_data import openstax_records
from reasonir_rag.types import Document
from tests.reliability.conftest import (
    LOOPBACK,
    RecordingProxy,
    kill_group_serving,
    listening_addresses,
    pid_listening_on,
    process_group,
    run_python,
    without_root_override,
)


def _openstax(repo_data: Path, book: str, n: int, step: int = 7) -> list[Document]:
    docs = []
    for rec in islice(openstax_records(book, repo_data / "openstax"), 0, n * step, step):
        docs.append(Document(rec["id"], rec["text"], {"book": rec["book"]}))
    return docs


class KillingEncoder:
    """The real encoder; runs ``on_call[n]`` right after its n-th ``encode_documents`` call (1-based) and counts
    the texts it embeds (to prove that a resumed ingest does not re-encode stored documents)."""

    def __init__(self, encoder, on_call: dict[int, object] | None = None):
        self._encoder, self.on_call = encoder, dict(on_call or {})
        self.calls = self.documents_encoded = 0

    def encode_documents(self, texts, **kwargs):
        out = self._encoder.encode_documents(texts, **kwargs)
        self.calls += 1
        self.documents_encoded += len(texts)
        action = self.on_call.pop(self.calls, None)
        if action is not None:
            action()
        return out

    def __getattr__(self, name):
        return getattr(self._encoder, name)


# ------------------------------------------------------------------------------------------ vLLM killed
def _reader_entries(journal: Journal) -> dict[str, float]:
    with sqlite3.connect(journal.path, timeout=5) as db:
        return dict(db.execute("SELECT key, created FROM entries WHERE kind = 'reader'"))


def _answered(proxy: RecordingProxy) -> dict[str, int]:
    """sha256 of each chat prompt -> how many times the server answered it (HTTP 200)."""
    counts: dict[str, int] = {}
    for ex in proxy.exchanges:
        if ex.path.endswith("/chat/completions") and ex.status == 200:
            key = hashlib.sha256(json.dumps(json.loads(ex.body)["messages"], sort_keys=True).encode()).hexdigest()
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_vllm_killed_mid_eval_fails_cleanly_then_resumes_without_lost_or_repeated_calls(
        tmp_path, smollm2_dir, repo_data, minilm_encoder, vllm_server):
    """A real vLLM server (its own, not the session's) is SIGKILLed after 2 answers of a 3-question x 2-condition
    run. The run stops at once with a clear error (no request storm against the dead server), the journal keeps
    every answer; then the client's address leads to a live server again (the session's vLLM, another process
    serving the same model under the same name: one vLLM start less than restarting our own), the rerun finishes,
    and every prompt was answered by a server exactly once."""
    from reasonir_rag.llm import OpenAICompatibleLLM
    from tests.servers import vllm_cpu_server

    store = ChromaStore("fault-eval", encoder=minilm_encoder, path=tmp_path / "chroma")
    store.add(_openstax(repo_data, "microbiology", 30, step=60))
    questions = load_mmlu(repo_data / "mmlu", subjects=["college_biology"], sample=3, seed=1)
    proxy = RecordingProxy()  # the client's fixed address; counts what the server really answered
    reader = OpenAICompatibleLLM("smollm2", base_url=proxy.url + "/v1", max_retries=2, backoff=0.2,
                                 max_concurrency=1, timeout=120)
    settings = EvalSettings(conditions=("closed-book", "rag"), max_tokens=12, concurrency=1, show_progress=False)
    journal_path = tmp_path / "journal.sqlite"
    killed: list[int] = []
    try:
        with vllm_cpu_server(smollm2_dir, tmp_path / "vllm-1.log") as served:
            port = int(served.base_url.rsplit(":", 1)[1].split("/")[0])
            proxy.upstream = port
            leaders = [pid for pid in pid_listening_on(port) if os.getpgid(pid) == pid]
            sockets = listening_addresses(process_group(leaders[0]))
            assert sockets and all(addr in LOOPBACK for _, addr, _ in sockets), sockets
            journal = Journal(journal_path)

            def kill_after_two_answers() -> None:
                deadline = time.monotonic() + 600
                while len(_reader_entries(journal)) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                killed.append(kill_group_serving(port, "vllm.entrypoints.openai.api_server"))

            killer = threading.Thread(target=kill_after_two_answers, daemon=True)
            killer.start()
            with pytest.raises(LLMError) as err:
                RAGEvaluator(reader=reader, journal=journal, retriever=store, settings=settings).run(questions)
            killer.join(timeout=60)
            assert killed, "the server was never killed"
        message = str(err.value)
        assert err.value.transient and "stopped early" in message and proxy.url in message, message
        assert "rerun to resume" in message and str(journal_path) in message
        before = _reader_entries(journal)
        journal.close()
        assert 2 <= len(before) < 6, "the kill should land mid-run"
        failed = [ex for ex in proxy.exchanges if ex.status != 200]
        assert len(failed) == 3, "the stage should stop after one prompt's 3 attempts, not try every prompt"

        proxy.upstream = int(vllm_server.base_url.rsplit(":", 1)[1].split("/")[0])  # the server is back
        with Journal(journal_path) as journal:
            results = RAGEvaluator(reader=reader, journal=journal, retriever=store, settings=settings).run(questions)
            after = _reader_entries(journal)
    finally:
        proxy.close()
    assert [(r.name, len(r.outcomes)) for r in results] == [("closed-book", 3), ("rag", 3)]
    assert len(after) == len(questions) * 2, "every question x condition answered"
    assert {k: after[k] for k in before} == before, "answers recorded before the kill were not redone"
    answered = _answered(proxy)
    assert len(answered) == 6 and set(answered.values()) == {1}, f"some prompt was answered twice: {answered}"


# ------------------------------------------------------------------------------------------ Chroma restarted
def test_chroma_server_down_mid_ingest_is_a_clear_error_and_a_rerun_resumes_by_id(
        chroma_server_factory, tiny_encoder, repo_data):
    """The server stops after the 3rd of 6 batches and stays down past the retries: a ConnectionError says how
    far the ingest got. Restarted on the same port, the same add() stores the rest, encoding only what is
    missing: count equals the corpus, every id once."""
    docs = _openstax(repo_data, "chemistry-bundle", 120)
    server = chroma_server_factory().start()
    encoder = KillingEncoder(tiny_encoder, on_call={3: server.stop})
    store = ChromaStore("ingest", encoder=encoder, host="127.0.0.1", port=server.port, records_per_call=20, retries=1)
    with pytest.raises(ConnectionError) as err:
        store.add(docs)
    message = str(err.value)
    assert f"127.0.0.1:{server.port}" in message and "40 of the 120 documents" in message, message
    assert "again to resume" in message

    server.start()
    resumed = KillingEncoder(tiny_encoder)
    store = ChromaStore("ingest", encoder=resumed, host="127.0.0.1", port=server.port, records_per_call=20)
    assert store.count() == 40
    stats = store.add(docs)
    assert stats.ids == [d.id for d in docs]
    assert resumed.documents_encoded == 80, "stored, unchanged documents were encoded again"
    assert stats.unchanged == 40 and stats.added == 80
    assert store.count() == len(docs)
    assert sorted(d.id for d in store.iter_documents()) == sorted(d.id for d in docs)


def test_chroma_server_restarted_mid_ingest_is_retried_and_nothing_is_lost(chroma_server_factory, tiny_encoder,
                                                                             repo_data, caplog):
    """A restart (stop, start again on the same port) during the ingest: add() retries with backoff and
    finishes by itself; every document is stored once and encoded once."""
    docs = _openstax(repo_data, "microbiology", 100)
    server = chroma_server_factory().start()

    def restart() -> None:
        server.stop()
        threading.Thread(target=server.start, daemon=True).start()  # back in a few seconds

    encoder = KillingEncoder(tiny_encoder, on_call={2: restart})
    store = ChromaStore("restart", encoder=encoder, host="127.0.0.1", port=server.port, records_per_call=25, retries=6)
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.index.store"):
        store.add(docs)
    assert "did not answer" in caplog.text, "the restart was not noticed: the test did not test anything"
    assert encoder.documents_encoded == len(docs)
    assert store.count() == len(docs)
    assert sorted(d.id for d in store.iter_documents()) == sorted(d.id for d in docs)


# ------------------------------------------------------------------------------------------ out of memory
def test_out_of_memory_during_store_add_keeps_every_document(tmp_path, tiny_reasonir_dir, tiny_encoder, repo_data,
                                                             monkeypatch):
    """FakeOOM (no GPU here): a simulated CUDA out-of-memory for any batch over 600 padded tokens. The encoder
    backs off (tests/encoder/test_batching.py covers the encoder alone); here the store's ingest must keep every
    document with exactly the embedding an OOM-free run gives."""
    import torch

    from reasonir_rag.encoding import backbones
    from reasonir_rag.encoding.encoder import ReasonIREncoder

    docs = _openstax(repo_data, "anatomy-physiology", 30)
    encoder = ReasonIREncoder.from_pretrained(str(tiny_reasonir_dir), device="cpu", max_length=128,
                                              max_tokens_per_batch=8192)
    expected = encoder.encode_documents([d.text for d in docs])
    real, failures = backbones.embed_batch, []

    def fake_oom_over_600_tokens(backbone, rows, ranges):
        if len(rows) * max(len(r) for r in rows) > 600:
            failures.append(len(rows))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real(backbone, rows, ranges)

    monkeypatch.setattr(backbones, "embed_batch", fake_oom_over_600_tokens)
    store = ChromaStore("oom", encoder=encoder, path=tmp_path / "chroma", records_per_call=40)
    stats = store.add(docs)
    assert stats.ids == [d.id for d in docs]
    assert failures, "the simulated OOM never triggered"
    assert store.count() == len(docs) and stats.added == len(docs)
    collection = store.client.get_collection("oom", embedding_function=None)
    got = collection.get(ids=[d.id for d in docs], include=["embeddings"])
    stored = dict(zip(got["ids"], got["embeddings"], strict=True))
    np.testing.assert_allclose(np.asarray([stored[d.id] for d in docs]), expected, atol=1e-5)


# ------------------------------------------------------------------------------------------ unwritable folder
_OPEN_ALL = """
import json, sys
from pathlib import Path
from reasonir_rag.encoding.cache import EmbeddingCache
from reasonir_rag.eval.journal import Journal
from reasonir_rag.pipeline.rewriter import RewriteCache
folder = Path(sys.argv[1])
out = {}
for name, make, path in [
        ("embedding cache", EmbeddingCache, folder / "emb"),
        ("embedding cache file", EmbeddingCache, folder / "cache.sqlite"),
        ("journal", Journal, folder / "run" / "journal.sqlite"),
        ("rewrite cache", RewriteCache, folder / "rewrites.sqlite")]:
    try:
        make(path)
        out[name] = [None, str(path)]
    except Exception as exc:
        out[name] = [type(exc).__name__, str(exc), str(path)]
print(json.dumps(out))
"""


def test_unwritable_cache_folders_are_clear_errors_naming_the_path(tmp_path):
    """A mode-0555 folder, truly unwritable (as root the child drops CAP_DAC_OVERRIDE first): the embedding
    cache, the rewrite cache and the eval journal each refuse at construction with a StorageError (an OSError)
    naming the path."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        done = run_python(_OPEN_ALL, str(folder), preexec_fn=without_root_override())
    finally:
        folder.chmod(0o755)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    for name, (kind, *rest) in results.items():
        assert kind is not None, f"the {name} opened in an unwritable folder: {rest}"
        message, path = rest
        assert kind == "StorageError" and issubclass(StorageError, OSError), (name, kind, message)
        assert path in message, (name, kind, message)
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------------------------------------ disk full
def fill_under_a_size_limit(folder: str) -> None:
    """Run in a subprocess: write a little, then cap file sizes (RLIMIT_FSIZE, SIGXFSZ ignored so a write
    fails with EFBIG like on a full disk) and write a lot; print what each store said."""
    import resource
    import signal

    from reasonir_rag.encoding.cache import EmbeddingCache
    from reasonir_rag.pipeline.rewriter import RewriteCache

    root = Path(folder)
    cache, journal, rewrites = EmbeddingCache(root / "emb"), Journal(root / "journal.sqlite"), \
        RewriteCache(root / "rewrites.sqlite")
    cache.put_many({f"small{i}": np.full(384, i, np.float32) for i in range(5)})
    from reasonir_rag.encoding.encoder import ReasonIREncoder

    texts = [f"passage number {i} about enzymes and activation energy" for i in range(400)]
    encoder = ReasonIREncoder.from_pretrained(preset="minilm", device="cpu", cache=cache, show_progress=False)
    # the reference: the same loaded model without the cache (a second load would only cost time)
    expected = ReasonIREncoder(encoder._backbones, encoder.config, show_progress=False).encode_documents(texts)
    for i in range(5):
        journal.put(f"small{i}", {"answer": i})
    rewrites.put_many({f"small{i}": f"rewrite {i}" for i in range(5)})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
    errors: dict[str, object] = {}
    # the encoder's cache write fails (400 x 384 floats > the limit): a logged fallback, the vectors are kept
    encoded_ok = bool(np.array_equal(encoder.encode_documents(texts), expected))
    rng = np.random.default_rng(0)
    try:
        cache.put_many({f"big{i}": rng.random(384, dtype=np.float32) for i in range(2000)})
    except Exception as exc:
        errors["embedding cache"] = [type(exc).__name__, str(exc)]
    written = 0
    try:
        for i in range(2000):
            journal.put(f"big{i}", {"answer": "x" * 1000})
            written += 1
    except Exception as exc:
        errors["journal"] = [type(exc).__name__, str(exc)]
    try:
        rewrites.put_many({f"big{i}": "y" * 1000 for i in range(2000)})
    except Exception as exc:
        errors["rewrite cache"] = [type(exc).__name__, str(exc)]
    print(json.dumps({"errors": errors, "journal_written": written, "encoded_despite_full_cache": encoded_ok}))


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def test_disk_full_is_a_clear_error_and_the_next_run_finds_no_corrupt_entry(tmp_path):
    """A real write failure (a file-size limit in a subprocess; SQLite sees EFBIG as on a full disk): each store
    raises an OSError naming its file. The next run, without the limit, opens all three: integrity_check ok, the
    earlier entries exact, the failed write absent (all or nothing), and writing works again."""
    from reasonir_rag.encoding.cache import EmbeddingCache
    from reasonir_rag.pipeline.rewriter import RewriteCache

    code = ("import sys\nfrom tests.reliability.test_faults import fill_under_a_size_limit as fill\n"
            "fill(sys.argv[1])")
    done = run_python(code, str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["encoded_despite_full_cache"], "a failed cache write lost the embeddings just computed"
    assert "returning the 400 new embeddings uncached" in done.stderr
    files = {"embedding cache": tmp_path / "emb" / "embeddings.sqlite", "journal": tmp_path / "journal.sqlite",
             "rewrite cache": tmp_path / "rewrites.sqlite"}
    for name, path in files.items():
        kind, message = report["errors"][name]
        assert kind == "StorageError" and issubclass(StorageError, OSError), (name, kind, message)
        assert str(path) in message, (name, kind, message)
        assert "disk" in message, message  # SQLite's "disk I/O error" / "database or disk is full" is kept

    cache = EmbeddingCache(tmp_path / "emb")
    assert _integrity(files["embedding cache"]) == "ok"
    small = cache.get_many([f"small{i}" for i in range(5)])
    assert all(np.array_equal(small[f"small{i}"], np.full(384, i, np.float32)) for i in range(5))
    assert cache.get_many([f"big{i}" for i in range(2000)]) == {} and len(cache) == 5
    cache.put_many({"after": np.ones(384, np.float32)})
    assert len(cache) == 6

    journal = Journal(files["journal"])
    assert _integrity(files["journal"]) == "ok"
    assert len(journal) == 5 + report["journal_written"]
    assert [journal.get(f"small{i}") for i in range(5)] == [{"answer": i} for i in range(5)]
    assert all(journal.get(f"big{i}") == {"answer": "x" * 1000} for i in range(report["journal_written"]))
    journal.put("after", {"ok": True})
    assert journal.get("after") == {"ok": True}

    rewrites = RewriteCache(files["rewrite cache"])
    assert _integrity(files["rewrite cache"]) == "ok"
    assert rewrites.get_many([f"small{i}" for i in range(5)]) == {f"small{i}": f"rewrite {i}" for i in range(5)}
    assert rewrites.get_many([f"big{i}" for i in range(2000)]) == {} and len(rewrites) == 5
