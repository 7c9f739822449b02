"""frequency_penalty (ReasonIR's GPQA decoding): OpenAI's definition in TransformersLLM; passed through to servers."""

from __future__ import annotations

import torch

from reasonir_rag.llm.transformers_backend import _FrequencyPenalty


def test_the_penalty_counts_generated_tokens_only():
    processor = _FrequencyPenalty(1.5, torch)
    processor.prompt_length = 2
    ids = torch.tensor([[7, 7, 3, 3, 5]])  # prompt 7 7; generated 3 3 5
    scores = torch.zeros(1, 10)
    out = processor(ids, scores)
    assert out[0, 3].item() == -3.0 and out[0, 5].item() == -1.5 and out[0, 7].item() == 0.0
    processor.prompt_length = 5
    assert torch.equal(processor(ids, scores), scores)  # nothing generated yet


def test_generation_with_a_penalty_differs_and_repeats_less(tiny_qwen_dir):
    from reasonir_rag.llm import TransformersLLM

    llm = TransformersLLM(str(tiny_qwen_dir), device="cpu")
    prompt = ["The list goes on and on and on and"]
    plain = llm.generate(prompt, max_tokens=24)[0]
    penalised = llm.generate(prompt, max_tokens=24, frequency_penalty=50.0)[0]
    ids = llm.tokenize(penalised)
    assert penalised != plain
    assert len(set(ids)) >= len(ids) - 2  # a huge penalty: (almost) no token twice (re-tokenizing may merge)
