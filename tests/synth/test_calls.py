"""The retries: a reply whose every query is unusable for its seed is retried with the JSON-only prompt and the
reply started; the verbatim copy is still rejected (and recorded), the retry's query kept."""

from __future__ import annotations

import json

import pytest

from reasonir_rag.errors import InvalidInputError
from reasonir_rag.synth import CallSettings, SynthesisSettings, synthesize
from reasonir_rag.synth.prompts import QUERY_REPLY_START

QUESTION = ("An engineer sees a crowded tank of microbes stop growing although food remains. Which limit would "
            "you test first, and what result would rule it out?")


class CopyThenContinue:
    """Copies a sentence of its passage on the first attempt; on a retry continues the started reply."""

    model_name = "copy-then-continue"

    def __init__(self):
        self.prompts: list[list[dict[str, str]]] = []

    def generate(self, prompts, **kwargs):
        self.prompts += prompts
        out = []
        for messages in prompts:
            if messages[-1]["role"] == "assistant":
                out.append(QUESTION + '"]} and then some trailing words')
            else:
                passage = messages[-1]["content"].split("<document>\n", 1)[1]
                out.append(json.dumps({"hard_query": [" ".join(passage.split()[:30])]}))
        return out

    def count_tokens(self, text):
        return len(text) // 3


def test_a_copied_query_is_rejected_and_the_seed_retried_with_the_reply_started(openstax_corpus, standin_classifier,
                                                                               tmp_path):
    llm = CopyThenContinue()
    settings = SynthesisSettings(task="biology", seeds=1, classifier=str(standin_classifier), chunk_tokens=256,
                                 show_progress=False, bm25_negatives=False)
    result = synthesize(openstax_corpus, llm, tmp_path, settings)
    assert len(llm.prompts) == 2 and llm.prompts[1][-1] == {"role": "assistant", "content": QUERY_REPLY_START}
    assert "no reasoning" in llm.prompts[1][0]["content"] and "<question 1>" not in llm.prompts[1][0]["content"]
    example = json.loads((tmp_path / "examples" / "biology.jsonl").read_text())
    assert result.examples == 1 and example["query"] == QUESTION and example["attempts"] == 2
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 1 and rejected[0]["reason"].startswith("copies the passage")
    assert result.manifest["counts"]["seeds_with_retries"] == 1


def test_retries_without_the_started_reply_for_an_api_that_refuses_it(openstax_corpus, standin_classifier, tmp_path):
    llm = CopyThenContinue()
    settings = SynthesisSettings(task="biology", seeds=1, classifier=str(standin_classifier), chunk_tokens=256,
                                 show_progress=False, bm25_negatives=False,
                                 calls=CallSettings(attempts=2, retry_reply_start=False))
    with pytest.raises(InvalidInputError, match="rejected"):  # both attempts copy: every parsed query is rejected
        synthesize(openstax_corpus, llm, tmp_path, settings)
    assert len(llm.prompts) == 2 and [m["role"] for m in llm.prompts[1]] == ["system", "user"]
    assert "no reasoning" in llm.prompts[1][0]["content"]
