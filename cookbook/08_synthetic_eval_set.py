"""From "my folder of documents" to an evaluation set, then to retrieval scores on it.

Step 1 builds a BRIGHT-format set with ``synthesize`` (ReasonIR's hard-query recipe: passages, exact dedup, seeds
by educational value, one LLM-written reasoning query per seed, plus the checks the recipe lacks: no copying, no
pointing at the passage, no near-duplicates; BM25 negatives at rank >= 21). Step 2 scores retrievers on it with
``evaluate_retrieval`` (what ``reasonir-rag eval retrieval --bright OUT --task TASK`` runs).

Offline (the default) it runs on a small folder of the shipped OpenStax passages with SmolLM2-135M as the LLM,
MiniLM as the encoder and a tiny random stand-in for the FineWeb-Edu classifier: THOSE NUMBERS SHOW THE MECHANICS
ONLY (a 135M model writes poor queries: at first placeholders or no JSON at all, then, on the retries that start
its reply with the JSON object, short generic questions, which the copy and length checks sift; and the stand-in
ranks passages arbitrarily). For a real set, point it at your folder with a capable LLM and the real classifier:

    python cookbook/08_synthetic_eval_set.py
    python cookbook/08_synthetic_eval_set.py --corpus ~/my-docs --task biology --seeds 200 \\
        --llm openai:meta-llama/Llama-3.1-70B-Instruct --base-url http://gpu-box:8000/v1 \\
        --classifier HuggingFaceTB/fineweb-edu-classifier --encoder reasonir

With ``OPENAI_BASE_URL`` and ``REASONIR_LLM_MODEL`` set, the LLM is that served model. ``REASONIR_COOKBOOK_SMOKE=1``
shrinks the defaults for the tests.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import tempfile
from pathlib import Path

from reasonir_rag import BM25Retriever, InvalidInputError, LLMError, ReasonIREncoder, evaluate_retrieval
from reasonir_rag.eval.ir_data import load_bright
from reasonir_rag.llm import load_llm
from reasonir_rag.offline import build_standin_edu_classifier
from reasonir_rag.sample_data import OPENSTAX_ATTRIBUTION, openstax_records
from reasonir_rag.synth import CallSettings, SynthesisSettings, synthesize

SMOKE = os.environ.get("REASONIR_COOKBOOK_SMOKE") == "1"
METRICS = ("ndcg@10", "recall@10", "mrr@10")


def sample_folder(folder: Path, per_book: int) -> Path:
    """A user's folder of documents, offline: the first passages of two shipped OpenStax books, one file each."""
    folder.mkdir(parents=True, exist_ok=True)
    for book in ("microbiology", "anatomy-physiology"):
        with (folder / f"{book}.jsonl").open("w", encoding="utf-8") as f:
            for record in itertools.islice(openstax_records(book), per_book):
                f.write(json.dumps({"id": record["id"], "text": record["text"]}) + "\n")
    return folder


def default_llm() -> str:
    if os.environ.get("OPENAI_BASE_URL") and os.environ.get("REASONIR_LLM_MODEL"):
        return "openai:" + os.environ["REASONIR_LLM_MODEL"]
    from reasonir_rag.offline import smollm2_folder

    return "hf:" + str(smollm2_folder())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", type=Path, help="your files or folders (default: shipped OpenStax)")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    parser.add_argument("--task", default="biology", help="the BRIGHT task whose query instruction fits best")
    parser.add_argument("--llm", help="openai:MODEL or hf:PATH (default: SmolLM2-135M offline)")
    parser.add_argument("--base-url", help="OpenAI-compatible server URL")
    parser.add_argument("--classifier", help="hub id or folder (default offline: the tiny random stand-in)")
    parser.add_argument("--encoder", default="minilm", help="minilm (offline stand-in), reasonir or a folder")
    parser.add_argument("--seeds", type=int, default=3 if SMOKE else 20)
    parser.add_argument("--max-tokens", type=int, default=128 if SMOKE else 1536)
    parser.add_argument("--per-book", type=int, default=15 if SMOKE else 60, help="offline sample size")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    work = Path(tempfile.mkdtemp(prefix="reasonir-synth-"))
    corpus = args.corpus or [sample_folder(work / "my-documents", args.per_book)]
    out = args.out or work / "eval-set"
    classifier = args.classifier or str(build_standin_edu_classifier(work / "edu-classifier-standin"))
    offline = args.llm is None and not os.environ.get("OPENAI_BASE_URL")
    llm = load_llm(args.llm or default_llm(), base_url=args.base_url, device=args.device)
    settings = SynthesisSettings(task=args.task, seeds=args.seeds, classifier=classifier, chunk_tokens=256,
                                 device=args.device, show_progress=False,
                                 calls=CallSettings(max_tokens=args.max_tokens, concurrency=args.seeds))
    print(f"step 1: synthesize {', '.join(map(str, corpus))} -> {out}  (LLM {llm.model_name})")
    try:
        result = synthesize(corpus, llm, out, settings)
    except (LLMError, InvalidInputError) as exc:  # no JSON at all, or every query rejected by the checks
        print(f"no query was kept: {exc}\n(a small model often writes no JSON, or placeholders: try a larger --llm; "
              f"the counts are in {out / 'manifest.json'})")
        return 1
    counts, selection = result.manifest["counts"], result.manifest["seed_selection"]
    print(f"  seeds chosen by {selection['kind']}: {selection['name']}")
    print(f"  {result.examples} of {counts['seeds']} seeds kept, {result.documents} documents; "
          f"no JSON: {counts['seeds_without_json']}, rejected: {counts['rejected']}, "
          f"BM25 negatives: {counts['bm25_negatives']}, LLM calls: {counts['llm_calls']['made']}")
    for line in (out / "examples" / f"{args.task}.jsonl").read_text().splitlines()[:2]:
        print("  query:", json.loads(line)["query"][:200])

    print(f"\nstep 2: reasonir-rag eval retrieval --bright {out} --task {args.task}")
    collection = load_bright(out, args.task)
    preset = args.encoder if args.encoder in ("minilm", "reasonir") else None
    encoder = ReasonIREncoder.from_pretrained(None if preset else args.encoder, preset=preset, device=args.device,
                                              show_progress=False)
    runs = {encoder.config.name: evaluate_retrieval(collection, encoder, metrics=METRICS),
            "BM25 (bright)": evaluate_retrieval(collection, BM25Retriever(list(collection.corpus.values()),
                                                                          config="bright"), metrics=METRICS)}
    print(f"| retriever ({len(collection.queries)} queries, {len(collection.corpus)} documents) | "
          + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for name, run in runs.items():
        print(f"| {name} | " + " | ".join(f"{run.scores.mean[m]:.4f}" for m in METRICS) + " |")
    if offline:
        print("\nstand-in models (SmolLM2-135M, MiniLM, a random classifier): these numbers show the mechanics "
              "only, not the quality of any retriever.")
    print("caveat: one positive per query (nDCG is a lower bound), and ReasonIR-8B was trained on queries of this "
          "style (such a set may favour it).")
    if args.corpus is None:
        print(OPENSTAX_ATTRIBUTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
