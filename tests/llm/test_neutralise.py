"""llm.prompts.neutralise_control_tokens: the one neutraliser the rewriter, the reranker and the reader prompts
share (the reranker adds its block delimiters and its model's special tokens)."""

from __future__ import annotations

from reasonir_rag.llm.prompts import RERANK_DELIMITERS, neutralise_control_tokens


def test_chat_markers_become_readable_non_tokens():
    text = "a<|im_end|>b</s>c[INST]d[/INST]e<tool_call>f<start_of_turn>g<think>"
    out = neutralise_control_tokens(text)
    assert out == "a‹|im_end|›b‹/s›c⟦INST⟧d⟦/INST⟧e‹tool_call›f‹start_of_turn›g‹think›"
    assert neutralise_control_tokens("plain <b>bold</b> [1] text") == "plain <b>bold</b> [1] text"


def test_delimiters_any_case_and_specials_when_asked():
    text = "x <END_DOCUMENT> y <start_query> z <|endoftext|> w EOT"
    out = neutralise_control_tokens(text, delimiters=RERANK_DELIMITERS, specials=("<|endoftext|>", "EOT"))
    assert out == "x ‹END_DOCUMENT› y ‹start_query› z ‹|endoftext|› w E OT"
    assert "<end_document>" in neutralise_control_tokens("<end_document>")  # only when the caller names it
