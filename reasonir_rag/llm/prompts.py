"""ReasonIR's LLM prompts, copied word for word (trailing spaces and typos included) so scores compare.

Reranker: facebookresearch/ReasonIR, ``evaluation/bright/prompts.py`` (the BRIGHT reranker prompts that
``evaluation/bright/reranker.py`` formats as ``prompt.format(query, document)`` and parses from
``"Relevance score:"``). Rewriter: facebookresearch/ReasonIR ``test_time_techniques`` (``query_rewriting.py``,
after BRIGHT's ``reason.py``). HyDE: Gao et al. 2022, "Precise Zero-Shot Dense Retrieval without Relevance
Labels" (texttron/hyde ``promptor.py``, web-search prompt).
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------- prompt hygiene
# Chat-template control tokens of the common families (ChatML, Llama, Mistral, Gemma, DeepSeek, Qwen tools)
_CONTROL_TOKENS = re.compile(
    r"<\|[^<>\s]{1,64}?\|>|<｜[^<>\s]{1,64}?｜>|</?s>|\[/?INST\]|<(?:start|end)_of_turn>|</?think>"
    r"|</?tool_(?:call|response)>"
)


_SOFTENED = str.maketrans({"<": "‹", ">": "›", "[": "⟦", "]": "⟧"})


def _soften(marker: str) -> str:
    """A marker kept readable but no longer a token: ``<|im_end|>`` -> ``‹|im_end|›``, ``[INST]`` -> ``⟦INST⟧``."""
    softened = marker.translate(_SOFTENED)
    return softened if softened != marker else marker[:1] + " " + marker[1:]


def neutralise_control_tokens(text: str, *, delimiters: tuple[str, ...] = (), specials: tuple[str, ...] = ()) -> str:
    """User text that cannot open or close a chat turn (``<|im_end|>``, ``</s>``, ``[INST]``, ``<tool_call>`` ...),
    nor a prompt's own blocks (``delimiters``, any case), nor a tokenizer's other special tokens (``specials``):
    each is kept readable but is no longer what it was (:func:`_soften`)."""
    for delimiter in delimiters:
        text = re.sub(re.escape(delimiter), lambda m: _soften(m.group(0)), text, flags=re.IGNORECASE)
    text = _CONTROL_TOKENS.sub(lambda m: _soften(m.group(0)), text)
    for special in specials:
        if special in text:
            text = text.replace(special, _soften(special))
    return text


# ---------------------------------------------------------------- reranker (pointwise, 0-5)
RERANK_GENERAL = """A document is relevant if it contains information that helps answer or address the query.
A document is not relevant if it doesn't contain information that helps answer the query, even if it mentions similar topics.
Is the document below relevant to answering the query below?
The answer should be 'Relevance score: X.' where X is a number from 0-5.
0 means completely irrelevant, 5 means highly relevant and completely addresses the query. Don't output anything else.
Here is the query:
<start_query>
{}
<end_query>
Here is the document:
<start_document>
{}
<end_document>
"""  # noqa: E501

RERANK_AOPS = """We want to find different but similar math problems to the following problem:
{}
A document is relevant if it uses the same class of functions and shares **any** overlapping techniques.
Document: {}
Score the document above. The answer should be 'Relevance score: X.' where X is a number from 0-5.
0 means completely irrelevant, 5 means highly relevant and completely addresses the query. Don't output anything else.
"""

RERANK_THEOREMQA_QUESTIONS = """We want to find a document which uses the same mathematical process as this one: 
{}
A document is relevant if it uses the same mathematical process as the query.
Document: {}
Score the document above. The answer should be 'Relevance score: X.' where X is a number from 0-5.
0 means completely irrelevant, 5 means highly relevant and completely addresses the query. Don't output anything else.
"""  # noqa: W291

# The source opens this one with a stray double quote; kept, since ReasonIR's numbers were made with it.
RERANK_THEOREMQA_THEOREMS = """"We want to find a document which uses the same mathematical process as this one: 
{}
A document is relevant if it uses the same mathematical process as the query.
Document: {}
Score the document above. The answer should be 'Relevance score: X.' where X is a number from 0-5.
0 means completely irrelevant, 5 means highly relevant and completely addresses the query. Don't output anything else.
"""  # noqa: W291

RERANK_LEETCODE = """I am looking to find different problems that share similar data structures
(of any kind) or algorithms (e.g. DFS, DP, sorting, traversals, etc.). I am looking for problems that share one or both of these similarities to
this:
{}
Does the passage below share any similarities? e.g. if there was a textbook on leetcode problems, this would be in the same book even though it could be in a different chapter.
Passage: {}
Please rate the passage above. The answer should be 'Relevance score: X.' where X is a number from 0-5.
0 means completely irrelevant, 5 means highly relevant and completely addresses the query. Don't output anything else.
"""  # noqa: E501

RERANK_PONY = """I will use the programming language pony. 
Problem: {}
But to solve the problem above, I need to know things about pony. A passage is relevant if it contains docs that match any part (even basic parts) of the code I will have to write for the above program.
Passage: {}
Please rate the passage above. The answer should be 'Relevance score: X.' where X is a number from 0-5.
0 means completely irrelevant, 5 means highly relevant and completely addresses the query. Don't output anything else.
"""  # noqa: E501, W291

RERANK_PROMPTS: dict[str, str] = {
    "aops": RERANK_AOPS,
    "theoremqa_questions": RERANK_THEOREMQA_QUESTIONS,
    "theoremqa_theorems": RERANK_THEOREMQA_THEOREMS,
    "leetcode": RERANK_LEETCODE,
    "pony": RERANK_PONY,
}

# What the model is asked to answer with; the score digit follows it directly.
ANSWER_PREFIX = "Relevance score:"
# Delimiters of the prompts above: user text containing them is neutralised before formatting.
RERANK_DELIMITERS = ("<start_query>", "<end_query>", "<start_document>", "<end_document>")


def rerank_prompt(task: str | None) -> str:
    """ReasonIR's reranker prompt for a BRIGHT task (``aops``, ``theoremqa_*``, ``leetcode``, ``pony``), else the
    general one. A ``:long`` suffix on the task is ignored."""
    name = (task or "").partition(":")[0]
    return RERANK_PROMPTS.get(name, RERANK_GENERAL)


# ---------------------------------------------------------------- rewriter
REWRITE_SYSTEM = "You are a helpful assistant"  # ReasonIR's OpenAIModel.generate default system message
REWRITE_REASONIR = (
    "{query}\n\n"
    "Instructions:\n"
    "1. Identify the essential problem.\n"
    "2. Think step by step to reason and describe what information could be relevant and helpful to address "
    "the questions in detail.\n"
    "3. Draft an answer with as many thoughts as you have.\n"
)
REWRITE_TOKEN_LIMIT = "Your answer must be written within {limit} tokens."
REWRITE_HYDE = "Please write a passage to answer the question.\nQuestion: {query}\nPassage:"
