"""ReasonIREmbedding inside LlamaIndex's IngestionPipeline, in process and with worker processes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from llama_index.core import Document
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import MetadataMode

from llama_index.embeddings.reasonir import ReasonIREmbedding


def _documents(openstax_modules, n):
    return [Document(id_=r["id"], text=r["text"], metadata={"section": r["section"]}) for r in openstax_modules[:n]]


def test_pipeline_embeds_every_node_with_the_document_prefix(tiny_encoder, openstax_modules):
    emb = ReasonIREmbedding(encoder=tiny_encoder, task="biology")
    nodes = IngestionPipeline(transformations=[emb]).run(documents=_documents(openstax_modules, 12))
    assert len(nodes) == 12
    contents = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    assert all(c.startswith("section: ") for c in contents)  # LlamaIndex embeds metadata + text
    expected = tiny_encoder.encode(contents, prefix=tiny_encoder.document_prefix)
    np.testing.assert_allclose(np.asarray([n.embedding for n in nodes]), expected, atol=1e-5)


@pytest.mark.slow  # two spawned processes import torch and load the model (~1 min on 2 shared cores)
def test_worker_processes_load_the_model_themselves_instead_of_receiving_it(tiny_reasonir_dir, tiny_encoder,
                                                                            openstax_modules):
    """num_workers>1: LlamaIndex pickles the transformations into spawned processes; only the spec travels and
    each worker loads the encoder once through shared_encoder."""
    emb = ReasonIREmbedding(str(tiny_reasonir_dir))
    pipeline = IngestionPipeline(transformations=[emb])
    assert len(pickle.dumps(pipeline.transformations)) < 20_000
    nodes = pipeline.run(documents=_documents(openstax_modules, 8), num_workers=2)
    assert len(nodes) == 8
    by_id = {n.node_id: n for n in nodes}
    docs = _documents(openstax_modules, 8)
    contents = [by_id[d.doc_id].get_content(metadata_mode=MetadataMode.EMBED) for d in docs]
    expected = tiny_encoder.encode_documents(contents)
    np.testing.assert_allclose(np.asarray([by_id[d.doc_id].embedding for d in docs]), expected, atol=1e-5)
