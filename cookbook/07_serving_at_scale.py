"""Serving at scale: LLMs behind vLLM, the index on a Chroma server, the encoder on several devices.

The same pipeline as the demo, with each part in its production shape:

- the encoder loads one replica per device (``devices=["cuda:0", "cuda:1", ...]``) and spreads batches over them;
- passages go to a Chroma server (``ChromaStore(host=, port=)``; token from ``$CHROMA_AUTH_TOKEN``), which many
  searchers share: start one with ``chroma run --path DIR --host 127.0.0.1 --port 8001``;
- the reranker and the reader talk to an OpenAI-compatible server (vLLM, as ReasonIR's own evaluation used) through
  ``OpenAICompatibleLLM``: bounded concurrency, retries with backoff, the key from ``$OPENAI_API_KEY``.
  ``python -m vllm.entrypoints.openai.api_server --model Qwen/Qwen2.5-7B-Instruct --port 8000``

Offline (as the tests run it): ``minilm`` on two CPU "devices" stands in for ReasonIR-8B on GPUs, SmolLM2-135M
served by vLLM for CPU stands in for Qwen2.5-7B-Instruct.

    python cookbook/07_serving_at_scale.py --llm-url http://127.0.0.1:8000/v1 --model smollm2 \
        --chroma-port 8001 --devices cpu,cpu
    python cookbook/07_serving_at_scale.py --llm-url http://gpu-box:8000/v1 --model Qwen/Qwen2.5-7B-Instruct \
        --chroma-host chroma.internal --chroma-port 8001 --encoder reasonir --devices cuda:0,cuda:1 \
        --passages 0 --questions 200 --candidates 100 --concurrency 64

``REASONIR_COOKBOOK_SMOKE=1`` shrinks the defaults for the tests.
Passages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import time

from reasonir_rag import ChromaStore, OpenAICompatibleLLM, QwenReranker, ReasonIREncoder, load_documents, load_mmlu
from reasonir_rag.eval.extract import extract_choice
from reasonir_rag.eval.prompts import build_messages
from reasonir_rag.sample_data import data_root, jsonl_files

DATA = data_root()  # the sample data the repository ships (data/), or $REASONIR_DATA
SMOKE = os.environ.get("REASONIR_COOKBOOK_SMOKE") == "1"
SUBJECTS = ["anatomy", "college_biology", "high_school_chemistry", "high_school_physics"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm-url", default=os.environ.get("REASONIR_LLM_URL") or os.environ.get("OPENAI_BASE_URL"),
                        help="OpenAI-compatible server for the reranker and the reader (…/v1)")
    parser.add_argument("--model", default=os.environ.get("REASONIR_LLM_MODEL"), help="the served model name")
    parser.add_argument("--chroma-host", default=os.environ.get("CHROMA_HOST", "127.0.0.1"))
    parser.add_argument("--chroma-port", type=int, default=int(os.environ.get("CHROMA_PORT", "0")) or None)
    parser.add_argument("--collection", default="openstax-serving")
    parser.add_argument("--encoder", default=os.environ.get("REASONIR_ENCODER", "minilm"),
                        help="minilm (offline stand-in), reasonir (ReasonIR-8B) or a checkpoint folder")
    parser.add_argument("--devices", default="cpu", help="comma-separated, one encoder replica each")
    parser.add_argument("--passages", type=int, default=80 if SMOKE else 2000, help="per run; 0: the whole corpus")
    parser.add_argument("--questions", type=int, default=2 if SMOKE else 16, help="MMLU questions answered")
    parser.add_argument("--candidates", type=int, default=4 if SMOKE else 20, help="retrieved per question")
    parser.add_argument("-k", type=int, default=3, help="passages given to the reader")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight to the LLM server")
    parser.add_argument("--max-tokens", type=int, default=16 if SMOKE else 256, help="reader's budget")
    parser.add_argument("--context", type=int, default=2048, help="the served model's context length")
    args = parser.parse_args(argv)
    if not (args.llm_url and args.model and args.chroma_port):
        parser.error("needs --llm-url and --model (an LLM server) and --chroma-port (a Chroma server)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    # 1. the encoder, one replica per device
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    preset = args.encoder if args.encoder in ("minilm", "reasonir") else None
    encoder = ReasonIREncoder.from_pretrained(None if preset else args.encoder, preset=preset, devices=devices,
                                              show_progress=False)

    # 2. the index on the Chroma server: idempotent, so a rerun or a second worker skips what is there
    store = ChromaStore(args.collection, encoder=encoder, host=args.chroma_host, port=args.chroma_port,
                        show_progress=False)
    # Millions of passages: embed them on a Ray cluster instead of this loop (one encoder actor per GPU, resumable
    # by ids), writing straight into this server's collection:
    #   from reasonir_rag import ChromaSink, embed_corpus_with_ray
    #   embed_corpus_with_ray("corpus/", encoder_spec=encoder.load_spec(),
    #                         sink=ChromaSink(args.collection, host=args.chroma_host, port=args.chroma_port))
    # An encoder served by vLLM's pooling runner instead of a local one: reasonir_rag.OpenAIEmbeddingsEncoder
    # (README "Served embeddings" gives the server flags that keep ReasonIR's pooling exact).
    files = jsonl_files(DATA / "openstax")
    per_file = args.passages // len(files) if args.passages else None
    start = time.perf_counter()
    added = 0
    for path in files:
        docs = list(itertools.islice(load_documents(path), per_file))
        added += store.add(docs, show_progress=False).added
    seconds = time.perf_counter() - start
    print(f"encoder:  {encoder.config.name} on {', '.join(devices)}")
    print(f"index:    {args.collection} on {args.chroma_host}:{args.chroma_port}: {store.count()} records, "
          f"{added} encoded now in {seconds:.1f} s" + (f" ({added / seconds:.0f} passages/s)" if added else ""))

    # 3. retrieve, rerank and read through the LLM server, many requests in flight
    llm = OpenAICompatibleLLM(args.model, base_url=args.llm_url, max_concurrency=args.concurrency)
    reranker = QwenReranker(llm, max_doc_tokens=256, max_prompt_tokens=args.context)
    questions = list(load_mmlu(DATA / "mmlu", subjects=SUBJECTS, sample=args.questions, seed=0))
    start = time.perf_counter()
    candidates = store.search_many([q.question for q in questions], k=args.candidates)
    search_s = time.perf_counter() - start
    start = time.perf_counter()
    top = [reranker.rerank(q.question, docs, top_n=args.k) for q, docs in zip(questions, candidates, strict=True)]
    rerank_s = time.perf_counter() - start
    start = time.perf_counter()
    prompts = [build_messages("mmlu", q, docs, max_passage_tokens=256, truncate=llm.truncate)
               for q, docs in zip(questions, top, strict=True)]
    answers = llm.generate(prompts, max_tokens=args.max_tokens, temperature=0.0, stop=["Question:"])
    read_s = time.perf_counter() - start
    n, scored = len(questions), sum(len(c) for c in candidates)
    print(f"LLM:      {args.model} at {args.llm_url}, {args.concurrency} requests in flight")
    print(f"search:   {n} queries in {search_s:.2f} s")
    print(f"rerank:   {scored} (question, passage) pairs in {rerank_s:.1f} s ({scored / rerank_s:.1f} pairs/s)")
    print(f"reader:   {n} answers in {read_s:.1f} s ({n / read_s:.2f} answers/s)")
    correct = 0
    for q, answer in zip(questions, answers, strict=True):
        found = extract_choice(answer, style="mmlu", n_choices=len(q.choices), choices=q.choices)
        correct += found.letter == q.answer_letter
        print(f"  {q.id}: answered {found.letter or '-'}, correct {q.answer_letter}")
    print(f"accuracy: {correct}/{n}")
    print("\nPassages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
