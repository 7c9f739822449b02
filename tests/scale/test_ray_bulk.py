"""Bulk embedding with Ray Data on a local CPU cluster: parity with the encoder, sinks, resume after a partial run.

"Nothing re-encoded" is read from the sink: records present before a run carry marked vectors (random unit
vectors, not the encoder's); a re-encode would overwrite them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray

from reasonir_rag.bulk.ray_embed import embed_corpus_with_ray
from reasonir_rag.bulk.sinks import ChromaSink, ParquetSink, existing_ids, read_parquet_embeddings, write_parquet_part
from reasonir_rag.errors import BulkEmbeddingError
from reasonir_rag.index.records import HASH_KEY, text_hash
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.types import Document

pytestmark = pytest.mark.usefixtures("ray_cluster")


def corpus(n: int = 24) -> list[dict]:
    topics = ["enzymes lower the activation energy", "buffers resist pH change", "Newton's third law",
              "photosynthesis releases oxygen", "mitochondria make ATP", "units and measurement"]
    return [{"id": f"doc-{i:03d}", "text": f"{topics[i % len(topics)]}, passage {i}: " + "detail " * (i % 7),
             "book": f"book-{i % 3}"} for i in range(n)]


def marks(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class CrashOnTextSimulated:
    """A simulated worker crash: the real tiny encoder, raising on one marked text (picklable factory spec)."""

    def __init__(self, folder: str, marker: str):
        self.folder, self.marker = folder, marker

    def __call__(self):
        from reasonir_rag.encoding.encoder import shared_encoder

        encoder = shared_encoder(self.folder, device="cpu")
        marker = self.marker

        class Crashing:
            fingerprint = encoder.fingerprint

            def encode_documents(self, texts, **kwargs):
                if any(marker in t for t in texts):
                    raise RuntimeError("simulated worker crash")
                return encoder.encode_documents(texts, **kwargs)

        return Crashing()


def wait_for_all_cpus(timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_parquet_sink_partial_crash_then_resume(tmp_path, tiny_encoder, tiny_reasonir_dir):
    rows = corpus()
    rows[21]["text"] = "CRASH-HERE " + rows[21]["text"]
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "emb"
    pre = rows[:8]  # pre-populated part of the sink, with marked vectors
    pre_marks = marks(len(pre), tiny_encoder.dim)
    write_parquet_part(out, [r["id"] for r in pre], [r["text"] for r in pre], [{} for _ in pre], pre_marks,
                       tiny_encoder.fingerprint)

    with pytest.raises(BulkEmbeddingError, match="simulated worker crash") as failed:
        embed_corpus_with_ray(source, encoder_spec=CrashOnTextSimulated(str(tiny_reasonir_dir), "CRASH-HERE"),
                              sink=ParquetSink(str(out)), rows_per_batch=4, num_actors=1)
    partial = failed.value.result
    assert (partial.failed, list(partial.failures), partial.encoded) == (1, ["doc-021"], len(rows) - len(pre) - 1)
    assert "rerun" in str(failed.value) and "simulated worker crash" in partial.failures["doc-021"]
    survived = existing_ids(ParquetSink(str(out)))
    assert sorted(survived) == sorted(r["id"] for r in rows if r["id"] != "doc-021")  # its batch-mates written
    for part in out.glob("part-*.parquet"):  # what a reader sees is whole (unfinished parts are hidden .tmp files)
        assert pq.read_table(part).num_rows > 0
    # The run's actor gives its CPU back although the error is still held (here by ``failed``, in a notebook by
    # sys.last_value); otherwise the resumed run below would wait forever for a CPU to read with.
    assert wait_for_all_cpus(), f"the failed run's actors still hold CPUs: {ray.available_resources()}"

    rows[21]["text"] = rows[21]["text"].replace("CRASH-HERE ", "")
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    resumed = embed_corpus_with_ray(source, encoder_spec=tiny_encoder.load_spec(), sink=str(out), rows_per_batch=4)
    assert (resumed.skipped, resumed.encoded, resumed.invalid) == (len(survived), len(rows) - len(survived), 0)

    ids, vectors = read_parquet_embeddings(out)
    assert sorted(ids) == [r["id"] for r in rows]  # nothing lost, nothing twice
    by_id = dict(zip(ids, vectors, strict=True))
    np.testing.assert_allclose(np.stack([by_id[r["id"]] for r in pre]), pre_marks, atol=1e-7)  # never re-encoded
    rest = [r for r in rows if r["id"] not in {p["id"] for p in pre}]
    np.testing.assert_allclose(np.stack([by_id[r["id"]] for r in rest]),
                               tiny_encoder.encode_documents([r["text"] for r in rest]), atol=1e-5)
    assert json.loads((out / "_fingerprint.json").read_text()) == tiny_encoder.fingerprint


def test_a_broken_encoder_drains_the_run_and_reports_every_text(tmp_path, tiny_reasonir_dir):
    rows = corpus(12)
    with pytest.raises(BulkEmbeddingError, match="12 text") as failed:
        embed_corpus_with_ray(rows, encoder_spec=CrashOnTextSimulated(str(tiny_reasonir_dir), "passage"),
                              sink=ParquetSink(str(tmp_path / "emb")), rows_per_batch=4, num_actors=1)
    failures = failed.value.result.failures
    assert (failed.value.result.encoded, len(failures)) == (0, 12)
    assert all("simulated worker crash" in e for e in failures.values())
    assert sum("not tried" in e for e in failures.values()) >= 4  # once a whole batch failed, later ones are not tried
    assert existing_ids(ParquetSink(str(tmp_path / "emb"))) == {}
    assert wait_for_all_cpus()


def test_chroma_server_sink_resumes_without_reencoding(tiny_encoder, chroma_server):
    host, port = chroma_server
    rows = corpus()
    rows[17]["text"] = "   "  # invalid: skipped with a warning, the rest of its batch still indexed
    store = ChromaStore("bulk-resume", encoder=tiny_encoder, host=host, port=port)
    pre = rows[:10]
    store.add([Document(r["id"], r["text"], {"book": r["book"]}) for r in pre])
    col = store.client.get_collection("bulk-resume", embedding_function=None)
    pre_marks = marks(len(pre), tiny_encoder.dim)
    col.update(ids=[r["id"] for r in pre], embeddings=pre_marks)  # what a re-encode would overwrite

    sink = ChromaSink("bulk-resume", host=host, port=port)
    result = embed_corpus_with_ray([Document(r["id"], r["text"], {"book": r["book"]}) for r in rows],
                                   encoder_spec=tiny_encoder.load_spec(), sink=sink, rows_per_batch=4)
    assert (result.encoded, result.skipped, result.invalid, result.invalid_ids) == (13, 10, 1, ["doc-017"])

    got = col.get(ids=[r["id"] for r in rows], include=["embeddings", "metadatas"])
    by_id = {i: (np.asarray(e), m) for i, e, m in zip(got["ids"], got["embeddings"], got["metadatas"], strict=True)}
    assert len(by_id) == 23 and "doc-017" not in by_id
    np.testing.assert_allclose(np.stack([by_id[r["id"]][0] for r in pre]), pre_marks, atol=1e-6)
    rest = [r for r in rows[10:] if r["id"] != "doc-017"]
    np.testing.assert_allclose(np.stack([by_id[r["id"]][0] for r in rest]),
                               tiny_encoder.encode_documents([r["text"] for r in rest]), atol=1e-5)
    assert by_id["doc-020"][1]["book"] == "book-2" and by_id["doc-020"][1][HASH_KEY] == text_hash(rows[20]["text"])

    # ChromaStore reads what the bulk job wrote: same fingerprint and hashes, nothing to re-encode, searchable
    stats = store.add([Document(r["id"], r["text"], {"book": r["book"]}) for r in rest])
    assert stats.added == 0 and stats.unchanged == len(rest)
    hits = store.search_by_vector(tiny_encoder.encode_documents([rows[20]["text"]])[0], k=1)
    assert hits[0].id == "doc-020" and hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_embedded_chroma_sink_is_written_by_the_driver(tmp_path, tiny_encoder):
    rows = corpus(8)
    sink = ChromaSink("bulk-embedded", path=str(tmp_path / "chroma"))
    result = embed_corpus_with_ray(rows, encoder_spec=tiny_encoder, sink=sink, rows_per_batch=3)
    assert (result.encoded, result.skipped) == (8, 0)
    store = ChromaStore("bulk-embedded", encoder=tiny_encoder, path=str(tmp_path / "chroma"), create=False)
    assert sorted(existing_ids(sink)) == [r["id"] for r in rows]
    hits = store.search_by_vector(tiny_encoder.encode_documents([rows[3]["text"]])[0], k=1)
    assert hits[0].id == "doc-003" and hits[0].metadata == {"book": "book-0"}


def test_bad_arguments_fail_before_any_work(tmp_path: Path, tiny_encoder):
    with pytest.raises(FileNotFoundError, match="no corpus"):
        embed_corpus_with_ray(tmp_path / "missing.jsonl", encoder_spec=tiny_encoder.load_spec(), sink=str(tmp_path))
    with pytest.raises(TypeError, match="sink must be"):
        embed_corpus_with_ray(corpus(2), encoder_spec=tiny_encoder.load_spec(), sink=42)
    with pytest.raises(TypeError, match="encoder_spec"):
        embed_corpus_with_ray(corpus(2), encoder_spec=42, sink=str(tmp_path))
    with pytest.raises(ValueError, match="rows_per_batch"):
        embed_corpus_with_ray(corpus(2), encoder_spec=tiny_encoder.load_spec(), sink=str(tmp_path), rows_per_batch=0)
