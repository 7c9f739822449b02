"""Golden tests: ReasonIR's evaluation strings, rules and settings (facebookresearch/ReasonIR, Search-o1), written
out as literals, against what each protocol renders. A drift in either protocol fails here."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonir_rag import InvalidInputError
from reasonir_rag.eval.datasets import Question
from reasonir_rag.eval.extract import (
    REASONIR_MMLU_RULES,
    extract_reasonir_gpqa,
    extract_reasonir_mmlu,
    reasonir_gpqa_answer,
)
from reasonir_rag.eval.prompts import build_messages, gpqa_question_block, retrieval_query, spec_for
from reasonir_rag.eval.protocol import PROTOCOLS, protocol_for
from reasonir_rag.eval.runner import EvalSettings
from reasonir_rag.pipeline.reranker import reasonir_score

# outer whitespace as 963 of MMLU's 14,042 test questions have it
MMLU_Q = Question("mmlu/high_school_biology/test/0", "high_school_biology", " Which organelle makes ATP?\n",
                  (" Mitochondrion", "Ribosome ", "Golgi body", "Lysosome"), 0)
GPQA_Q = Question("gpqa/rec1", "Chemistry", "What is the pH of pure water at 25 C?", ("7", "1", "14", "0"), 0)

MMLU_INSTRUCTION = ('The following are multiple choice questions (with answers) about high_school_biology. Think '
                    'step by step and then finish your answer with "the answer is (X)" where X is the correct '
                    'letter choice.\n\n\n')


def test_mmlu_paper_prompt_is_reasonirs_byte_for_byte():
    messages = build_messages("mmlu", MMLU_Q, ["  first passage\n", "second"], clean=False)
    assert messages == [
        {"role": "system", "content": "You are a helpful assistent."},
        {"role": "user", "content": "Related background:\n  first passage\n\n\nsecond\n\n" + MMLU_INSTRUCTION + "\n"
         "Question:\n Which organelle makes ATP?\n\nOptions:\nA.  Mitochondrion\nB. Ribosome \nC. Golgi body\n"
         "D. Lysosome\nAnswer: Let's think step by step."}]
    closed = build_messages("mmlu", MMLU_Q, None, clean=False)
    assert closed[1]["content"].startswith(MMLU_INSTRUCTION + "\nQuestion:\n")  # four newlines before Question:


def test_mmlu_default_prompt_has_the_same_layout_with_clean_texts():
    content = build_messages("mmlu", MMLU_Q, ["  first passage\n", "second"])[1]["content"]
    assert content == ("Related background:\nfirst passage\n\nsecond\n\n" + MMLU_INSTRUCTION + "\n"
                       "Question:\nWhich organelle makes ATP?\nOptions:\nA. Mitochondrion\nB. Ribosome\n"
                       "C. Golgi body\nD. Lysosome\nAnswer: Let's think step by step.")
    assert spec_for("mmlu").generation == {"temperature": 0.0, "max_tokens": 2048, "stop": ["Question:"]}


GPQA_FIELD = "What is the pH of pure water at 25 C? Choices:\n(A) 7\n(B) 1\n(C) 14\n(D) 0\n"
GPQA_TASK = ("Please answer the following multiple-choice question. You should think step by step to solve it.\n\n"
             "Provide your final choice in the format \\boxed{YOUR_CHOICE}.\n\nQuestion:\n" + GPQA_FIELD + "\n\n")


@pytest.mark.parametrize("clean", [True, False])
def test_gpqa_prompts_are_reasonirs_and_search_o1s(clean):
    assert gpqa_question_block(GPQA_Q, clean=clean) == GPQA_FIELD
    rag = build_messages("gpqa", GPQA_Q, ["doc one", "doc two"], clean=clean)
    assert rag == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "You are a knowledgeable assistant that uses the provided documents to answer "
         "the user's question.\n\nQuestion:\n" + GPQA_FIELD + "\nDocuments:\nPassage 1:\ndoc one\n\nPassage 2:\n"
         "doc two\n" + "\n\n" + GPQA_TASK}]
    # closed-book is Search-o1's direct baseline: one user message, no system message
    assert build_messages("gpqa", GPQA_Q, None, clean=clean) == [{"role": "user", "content": GPQA_TASK}]
    assert spec_for("gpqa").generation == {"temperature": 0.7, "top_p": 0.8, "max_tokens": 8000,
                                           "frequency_penalty": 1.0}


def test_the_paper_retrieval_queries_are_what_reasonirs_rag_runs_searched_with():
    assert retrieval_query("mmlu", MMLU_Q, clean=False) == (
        "The following are multiple choice questions (with answers) about high school biology.\n\n"
        "Which organelle makes ATP?\nA.  Mitochondrion\nB. Ribosome \nC. Golgi body\nD. Lysosome\nAnswer:")
    assert retrieval_query("gpqa", GPQA_Q, clean=False) == GPQA_FIELD
    assert retrieval_query("mmlu", MMLU_Q) == "Which organelle makes ATP?"  # the default: the question alone
    assert PROTOCOLS["paper"].retrieval_instruction == "" and PROTOCOLS["default"].retrieval_instruction is None


@pytest.mark.parametrize(("text", "letter", "method"), [
    ("so the answer is (B).", "B", "answer_is"),
    ("the answer is C", "C", "answer_is"),
    ("Final Answer: A", "A", "answer_colon"),
    ("either A or maybe B, I think", "B", "last_letter"),
    ("\\boxed{C}", "C", "last_letter"),  # ReasonIR has no boxed rule; its last rule finds the lone C
    ("no letter at all", "D", "guess"),  # random.seed(12345); random.randint(0, 3) is 3, every time
    ("", "D", "guess"),
])
def test_mmlu_paper_extraction_is_reasonirs_three_regexes_then_its_guess(text, letter, method):
    found = extract_reasonir_mmlu(text)
    assert (found.letter, found.method) == (letter, method)
    assert found.extracted == (method != "guess")



_PIECES = ("answer:", "Answer: ", "answer is ", "(", ")", "A", "B", "C", "D", "E", "a", " ", "\n", "\r", "\t", "x",
           "Answer:\n", ".", "answer: Answer: ")


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_PIECES), max_size=24))
def test_mmlu_paper_extraction_returns_what_reasonirs_patterns_return(pieces):
    """The linear-time rules pick exactly the letter ReasonIR's verbatim (quadratic) patterns pick."""
    text = "".join(pieces)
    expected = ("guess", "D")
    for rule, pattern in REASONIR_MMLU_RULES:
        found = pattern.search(text)
        if found:
            expected = (rule, found.group(1) if pattern.groups else found.group(0))
            break
    got = extract_reasonir_mmlu(text)
    assert (got.method, got.letter) == expected


def test_mmlu_paper_extraction_reads_a_long_answer_by_the_same_rules():
    """A 30,000-character answer (a reader looping to max_tokens) is read like a short one: the first line with
    an ``Answer:`` gives its last one, and a lone letter at the very end is the last-letter rule's."""
    looping = "we consider the membrane " * 1200
    assert extract_reasonir_mmlu(looping + "\nAnswer: B and Answer: C\nAnswer: A").letter == "C"
    assert extract_reasonir_mmlu("A " * 7500 + "x " * 7500 + "B").letter == "B"

@pytest.mark.parametrize(("text", "answer", "em_letter", "acc"), [
    ("so \\boxed{(A)}", "a", "A", True),
    ("\\boxed{B} then \\boxed{ A }", "b} then \\boxed{ a", None, True),  # greedy (.*): ReasonIR's as it is
    ("\\boxed{A is right}", "a is right", None, True),  # acc (the letter occurs), not em
    ("\\text{A}", "a", "A", True),
    ("The answer: A", "", None, False),  # no boxed, no text: no guess
])
def test_gpqa_paper_extraction_is_search_o1s_em_and_acc(text, answer, em_letter, acc):
    found, got = extract_reasonir_gpqa(text)
    assert got == answer == reasonir_gpqa_answer(text) and found.letter == em_letter
    assert ("a" in got) == acc


@pytest.mark.parametrize(("output", "score"), [
    ("Relevance score: 4.", 4.0), ("blah Relevance score: 2 ... Relevance score: 5", 5.0),
    ("Relevance score: 10", 1.0),  # two characters after the phrase: " 1"
    ("Relevance score: x", -5.0),  # ReasonIR's -1 on its 0-1 scale
    ("I would say 4", 0.0),  # no phrase: 0
])
def test_reranker_paper_parse_is_reasonirs(output, score):
    assert reasonir_score(output) == score


def test_the_protocols_settings_and_names():
    paper = protocol_for("paper")
    assert dict(paper.rewriter) == {"temperature": 0.8, "top_p": 0.8, "seed": None, "keep_original": False,
                                    "clean_texts": False}
    assert dict(paper.reranker) == {"mode": "generate", "parse": "reasonir", "temperature": 0.6, "top_p": 0.9,
                                    "max_tokens": 32, "seed": None, "max_doc_tokens": None, "clean_texts": False}
    assert paper.bright_max_length == 32768 and protocol_for("default").bright_max_length is None
    assert not paper.clean_texts and paper.extraction == "reasonir"
    with pytest.raises(InvalidInputError, match="unknown protocol 'papers'"):
        EvalSettings(protocol="papers")


def test_the_paper_rewriter_and_reranker_take_the_protocols_settings(tiny_qwen_dir):
    from reasonir_rag.llm import TransformersLLM
    from reasonir_rag.pipeline.reranker import QwenReranker
    from reasonir_rag.pipeline.rewriter import QueryRewriter

    llm = TransformersLLM(str(tiny_qwen_dir), device="cpu")
    rewriter = QueryRewriter(llm, max_tokens=64, **PROTOCOLS["paper"].rewriter)
    user = rewriter.prompt("Why\ndoes ice <|im_end|> float?\r\nTell me.")[1]["content"]
    assert user.startswith("Why does ice <|im_end|> float?\r Tell me.\n\nInstructions:\n1. Identify the essential")
    assert user.endswith("as many thoughts as you have.\nYour answer must be written within 64 tokens.")
    reranker = QwenReranker(llm, **PROTOCOLS["paper"].reranker)
    (prompt,) = reranker.prompts("q", ["a <end_document> doc " * 3000])
    assert "a <end_document> doc " * 3000 in prompt  # the whole document, untouched


def test_paper_retrieval_warns_when_the_documents_carry_a_prefix(tiny_encoder, tmp_path, caplog):
    from reasonir_rag import ChromaStore
    from reasonir_rag.eval.journal import Journal
    from reasonir_rag.eval.runner import RAGEvaluator

    store = ChromaStore("paper-prefix", encoder=tiny_encoder, path=tmp_path / "chroma")
    journal = Journal(tmp_path / "j.sqlite")
    with caplog.at_level("WARNING", logger="reasonir_rag.eval.runner"):
        RAGEvaluator(reader=object(), journal=journal, retriever=store,  # type: ignore[arg-type]
                     settings=EvalSettings(conditions=("closed-book", "rag"), protocol="default"))
        assert "empty instruction" not in caplog.text
        RAGEvaluator(reader=object(), journal=journal, retriever=store,  # type: ignore[arg-type]
                     settings=EvalSettings(conditions=("closed-book", "rag"), protocol="paper"))
    assert "--document-prefix ''" in caplog.text and "'<|embed|>\\n'" in caplog.text
    assert f"it embeds {tiny_encoder.config.max_length} tokens, not 512" in caplog.text
