"""The synthesizer's two prompts, written for this project from the published recipe's requirements.

ReasonIR's hard-query recipe asks an LLM, once per seed passage, for a standalone, reasoning-intensive question
whose answer the passage supports, and (in a later script) for a hard negative: a passage that shares the
query's vocabulary without the reasoning link. These texts carry the project's name, not ReasonIR's: they follow
the recipe's requirements in our own words (the released prompts are CC BY-NC). Their SHA-256 goes into every
journal key and the manifest, so an edited prompt never reuses replies written for the old one.
"""

from __future__ import annotations

import hashlib

from reasonir_rag.llm.prompts import neutralise_control_tokens
from reasonir_rag.types import Message

#: The keys the reply's JSON object may use (the recipe's, then its fallback).
QUERY_KEYS = ("hard_query", "questions")
NEGATIVE_KEYS = ("hard_negative_document",)

QUERY_RULES = """\
You help build a test of search engines that must find evidence by reasoning, not by matching words.

You will see one passage inside <document> tags. Write {n} question(s) that a thoughtful person could ask \
without ever having seen this passage, and for which the passage would be genuinely useful supporting evidence.

Each question must:
- describe a concrete, realistic situation (a case, an observation, a design choice, a puzzle) in a few sentences, \
then ask about it;
- require analysis, evaluation or synthesis: applying the principle the passage explains to the new situation, \
not looking up a fact;
- stand on its own: a reader who never saw the passage must understand it fully;
- belong to the passage's field while not depending on details that only this passage contains.

Each question must NOT:
- mention or allude to "the passage", "the text", "the document", "the author" or anything shown here;
- be answerable by recalling a single fact or definition;
- copy sentences or distinctive phrases from the passage;
- be a reading-comprehension question about the passage itself.

"""

#: The first attempt: the recipe's shape, reasoning first and the JSON object last.
QUERY_SYSTEM = QUERY_RULES + """\
First think step by step: what reasoning does the passage support, and what situation would need it? Then end \
your reply with a JSON object and nothing after it, exactly in this shape:
{{"hard_query": ["<question 1>"]}}"""

QUERY_USER = "<document>\n{passage}\n</document>\n\nThink it through, then write the JSON object."

#: A retry (the first reply held no usable query): the same rules, the JSON object only, and the reply started
#: with the object's opening (:data:`QUERY_REPLY_START`), so a model that wandered off writes the query itself.
#: No placeholder value is shown: small models copy one verbatim.
QUERY_RETRY_SYSTEM = QUERY_RULES + """\
Reply with the JSON object only, no reasoning: its one key "hard_query" holds a list of your question(s), each a \
string."""
QUERY_RETRY_USER = "<document>\n{passage}\n</document>\n\nWrite the JSON object."
QUERY_REPLY_START = '{"hard_query": ["'

NEGATIVE_SYSTEM = """\
You help build a test of search engines that must find evidence by reasoning, not by matching words.

You will see a question and the passage that helps answer it. Write a new passage of about {words} words that a \
word-matching search engine would confuse with the helpful one: it uses many of the same terms and the same \
topic, reads like a real reference text, but gives no help with the reasoning the question needs (it discusses \
a neighbouring idea, a different mechanism, or the same words in another sense). Do not state that it is \
unhelpful and do not mention the question.

End your reply with a JSON object and nothing after it, exactly in this shape:
{{"hard_negative_document": "<the passage>"}}"""

NEGATIVE_USER = ("<question>\n{query}\n</question>\n\n<helpful_passage>\n{passage}\n</helpful_passage>\n\n"
                 "Write the JSON object.")
#: A retry of a negative: the same prompt, the reply started with the object's opening.
NEGATIVE_REPLY_START = '{"hard_negative_document": "'


_DELIMITERS = ("<document>", "</document>", "<question>", "</question>", "<helpful_passage>", "</helpful_passage>")


def _clean(text: str) -> str:
    """User text that can neither close this prompt's blocks nor a chat turn."""
    return neutralise_control_tokens(text, delimiters=_DELIMITERS)


def query_messages(passage: str, *, n: int = 1, retry: bool = False) -> list[Message]:
    """The chat messages of one query-writing call; the passage's chat markers are neutralised. ``retry``: the
    JSON-only form, ending in the assistant's started reply (a backend continues it)."""
    if retry:
        return [{"role": "system", "content": QUERY_RETRY_SYSTEM.format(n=n)},
                {"role": "user", "content": QUERY_RETRY_USER.format(passage=_clean(passage))},
                {"role": "assistant", "content": QUERY_REPLY_START}]
    return [{"role": "system", "content": QUERY_SYSTEM.format(n=n)},
            {"role": "user", "content": QUERY_USER.format(passage=_clean(passage))}]


def negative_messages(query: str, passage: str, *, words: int = 300, retry: bool = False) -> list[Message]:
    """The chat messages of one hard-negative call (``retry``: the reply started, as for queries)."""
    messages: list[Message] = [
        {"role": "system", "content": NEGATIVE_SYSTEM.format(words=words)},
        {"role": "user", "content": NEGATIVE_USER.format(query=_clean(query), passage=_clean(passage))}]
    return [*messages, {"role": "assistant", "content": NEGATIVE_REPLY_START}] if retry else messages


def prompt_sha256(*texts: str) -> str:
    """SHA-256 of the prompt texts (NUL-joined): what the manifest and the journal keys record."""
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()


QUERY_PROMPT_SHA256 = prompt_sha256(QUERY_SYSTEM, QUERY_USER)
NEGATIVE_PROMPT_SHA256 = prompt_sha256(NEGATIVE_SYSTEM, NEGATIVE_USER)
QUERY_RETRY_PROMPT_SHA256 = prompt_sha256(QUERY_RETRY_SYSTEM, QUERY_RETRY_USER, QUERY_REPLY_START)
NEGATIVE_RETRY_PROMPT_SHA256 = prompt_sha256(NEGATIVE_SYSTEM, NEGATIVE_USER, NEGATIVE_REPLY_START)
