"""Fixtures for the synthesizer: a small corpus of OpenStax passages, the stand-in classifier, a scripted LLM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def openstax_corpus(tmp_path_factory, repo_data) -> Path:
    """40 shipped OpenStax passages (microbiology) as a user's JSONL file."""
    from reasonir_rag.sample_data import openstax_records

    path = tmp_path_factory.mktemp("corpus") / "passages.jsonl"
    records = [r for _, r in zip(range(40), openstax_records("microbiology", repo_data / "openstax"), strict=False)]
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in records))
    return path


@pytest.fixture(scope="session")
def standin_classifier(tmp_path_factory) -> Path:
    from reasonir_rag.offline import build_standin_edu_classifier

    return build_standin_edu_classifier(tmp_path_factory.mktemp("edu-standin"))


class ScriptedLLM:
    """Stands in for an LLM that follows the prompt (a GPU-sized model such as the recipe's Llama-3.1-70B, which
    cannot run here): each reply is built from the passage in the prompt, in the messy shapes real models write
    (reasoning first, code fences, dict items); the first attempt for ``no_json_first`` passages has no JSON, so a
    retry is needed. ``calls`` counts every prompt it answered."""

    model_name = "scripted-stand-in"

    def __init__(self, no_json_first: int = 1):
        self.calls = 0
        self.no_json_first = no_json_first
        self._seen: dict[str, int] = {}

    def generate(self, prompts, *, max_tokens=256, temperature=0.0, top_p=1.0, seed=None, stop=None,
                 return_exceptions=False, frequency_penalty=0.0):
        self.calls += len(prompts)
        return [self.reply(messages, temperature) for messages in prompts]

    def reply(self, messages, temperature: float) -> str:
        user = next(m["content"] for m in reversed(messages) if m["role"] == "user")  # a retry ends in a started
        # reply, which this stand-in ignores: it writes a fresh one, as a server without continuation does
        if "<question>" in user:
            words = sorted(set(re.findall(r"[a-z]{7,}", user.lower())))[:40]
            return json.dumps({"hard_negative_document": "Reference notes. " + " ".join(reversed(words))})
        passage = user.split("<document>\n", 1)[1].split("\n</document>", 1)[0]
        order = self._seen.setdefault(passage, len(self._seen))
        if temperature == 0.0 and order < self.no_json_first:
            return "Let me think step by step about the passage. The key idea is a mechanism."
        terms = sorted(set(re.findall(r"[a-z]{6,}", passage.lower())), key=lambda w: (-len(w), w))[:10]
        scenario = f"A clinical team compares {terms[0]} with {terms[1]} while studying {terms[2]}."
        question = f"Which {terms[3]} reasoning explains {terms[4]} given {terms[5]} and {terms[6]}?"
        shape = order % 3
        if shape == 0:
            return "Step 1: the idea.\n```json\n" + json.dumps({"hard_query": [scenario + " " + question]}) + "\n```"
        if shape == 1:
            return "Here it is: " + json.dumps({"hard_query": [{"scenario": scenario, "question": question}]})
        return json.dumps({"questions": [scenario + " " + question]}) + " Done."

    def next_token_logprobs(self, *args, **kwargs):
        raise NotImplementedError("the scripted stand-in only generates")

    def render_chat(self, *args, **kwargs):
        raise NotImplementedError("the scripted stand-in only generates")

    def tokenize(self, text):
        return None

    def count_tokens(self, text):
        return len(text) // 3

    def truncate(self, text, max_tokens):
        return text[: 3 * max_tokens]


@pytest.fixture
def scripted_llm() -> ScriptedLLM:
    return ScriptedLLM()
