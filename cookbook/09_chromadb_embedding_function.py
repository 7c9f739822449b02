"""ReasonIR inside plain chromadb: ``ReasonIREmbeddingFunction`` embeds, and the collection remembers the encoder.

For code that already uses chromadb directly (``collection.add(documents=...)``, ``collection.query(query_texts=
...)``) instead of ``ChromaStore``: the embedding function gives documents ReasonIR's document prefix and queries
the query instruction (here a BRIGHT task's). It is registered with chromadb as ``"reasonir"``, so a new client
that opens the collection without naming an embedding function rebuilds the same encoder from the persisted
config; ``get_collection`` / ``get_or_create_collection`` from ``reasonir_rag.index.embedding_function`` also
refuse another encoder, as ``ChromaStore`` does (chromadb itself compares only the names).

Offline: ``minilm`` stands in for ReasonIR-8B over OpenStax passages. With the real model:

    python cookbook/09_chromadb_embedding_function.py --encoder reasonir

``REASONIR_COOKBOOK_SMOKE=1`` shrinks the defaults for the tests.
Passages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import tempfile
from pathlib import Path

import chromadb

from reasonir_rag import ReasonIREncoder
from reasonir_rag.errors import EncoderMismatchError
from reasonir_rag.index.embedding_function import ReasonIREmbeddingFunction, get_collection, get_or_create_collection
from reasonir_rag.sample_data import openstax_dir, openstax_records

SMOKE = os.environ.get("REASONIR_COOKBOOK_SMOKE") == "1"
BOOKS = ("university-physics-bundle", "chemistry-bundle", "anatomy-physiology")


def client(path: Path) -> chromadb.ClientAPI:
    return chromadb.PersistentClient(path=str(path), settings=chromadb.config.Settings(anonymized_telemetry=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default="Why does a buffer keep the pH of blood nearly constant?")
    parser.add_argument("--encoder", default=os.environ.get("REASONIR_ENCODER", "minilm"),
                        help="minilm (offline stand-in), reasonir (ReasonIR-8B) or a checkpoint folder")
    parser.add_argument("--task", default="biology", help="BRIGHT task whose query instruction to use")
    parser.add_argument("--data", type=Path, default=openstax_dir(), help="the OpenStax JSONL folder")
    parser.add_argument("--passages", type=int, default=30 if SMOKE else 150, help="passages per book")
    parser.add_argument("-k", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    encoder = ReasonIREncoder.from_pretrained(args.encoder)
    rows = []  # the first passages of each book, and in chemistry those about buffers (what the question asks)
    for book in BOOKS:
        every = list(openstax_records(book, args.data))
        about = [r for r in every if book == "chemistry-bundle" and "buffer" in r.get("section", "").lower()]
        rows += {r["id"]: r for r in every[: args.passages] + about[:5]}.values()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chroma"
        ef = ReasonIREmbeddingFunction(encoder, task=args.task)
        collection = get_or_create_collection(client(path), "openstax", ef)  # cosine, fingerprint recorded
        collection.add(ids=[r["id"] for r in rows], documents=[r["text"] for r in rows],
                       metadatas=[{"book": r["book"], "section": r.get("section") or ""} for r in rows])
        print(f"indexed {collection.count()} passages with chromadb; embedding function "
              f"{collection.configuration_json['embedding_function']['name']!r}")

        # a new client, no embedding function named: chromadb rebuilds ReasonIR's from the persisted config
        reopened = client(path).get_collection("openstax", embedding_function=None)
        got = reopened.query(query_texts=[args.question], n_results=args.k)
        print(f"question ({args.task} instruction): {args.question}")
        for rank, (meta, dist) in enumerate(zip(got["metadatas"][0], got["distances"][0], strict=True), 1):
            print(f"  {rank}. {1 - dist:.3f}  {meta['book']} / {meta['section']}")

        other = ReasonIREncoder.from_pretrained(args.encoder, document_prefix="passage: ")  # another fingerprint
        try:
            get_collection(client(path), "openstax", ReasonIREmbeddingFunction(other))
        except EncoderMismatchError as exc:
            differ = re.search(r"they differ in: ([^)]*)", str(exc))
            print(f"another encoder is refused ({type(exc).__name__}; they differ in: {differ and differ.group(1)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
