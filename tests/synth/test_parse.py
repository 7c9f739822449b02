"""Golden parsing of messy LLM replies: literal replies of the kinds small and large models write."""

from __future__ import annotations

import pytest

from reasonir_rag.synth.parse import json_objects, parse_negative, parse_queries

Q = "A farmer's tomatoes wilt at noon despite wet soil. What limits water uptake, and how would you test it?"

GOLDEN = [
    ("bare object", '{"hard_query": ["' + Q + '"]}', [Q]),
    ("preamble and reasoning", "Sure! Let me think step by step.\n1. The passage explains xylem tension.\n"
     "2. A scenario...\n\nFinal answer:\n{\"hard_query\": [\"" + Q + "\"]}", [Q]),
    ("json code fence", "Here you go:\n```json\n{\n  \"hard_query\": [\n    \"" + Q + "\"\n  ]\n}\n```\nHope it helps!",
     [Q]),
    ("dict items", '{"hard_query": [{"scenario": "A farmer\'s tomatoes wilt at noon despite wet soil.", '
     '"question": "What limits water uptake, and how would you test it?"}]}', [Q]),
    ("braces in the reasoning first", "The set {x | x > 0} matters here; also {not json}.\n"
     '{"hard_query": ["' + Q + '"]}', [Q]),
    ("another object before the answer", '{"step": 1}\n{"questions": ["' + Q + '"]}', [Q]),
    ("a string, not a list", '{"hard_query": "' + Q + '"}', [Q]),
    ("whitespace collapsed, empties dropped", '{"hard_query": ["  A farmer\'s tomatoes wilt\\n at noon despite '
     'wet soil.   What limits water uptake, and how would you test it? ", "", {"scenario": ""}]}', [Q]),
    ("text after the object", '{"hard_query": ["' + Q + '"]} I reasoned about transpiration.', [Q]),
    ("cut inside the list: the complete items", '{"hard_query": ["' + Q + '", {"scenario": "x", "question": "y"}, '
     '"A second question that was cut o', [Q, "x y"]),
    ("a started reply the server wrote afresh", '{"hard_query": ["' + '{"questions": ["' + Q + '"]}', [Q]),
]


@pytest.mark.parametrize(("reply", "expected"), [g[1:] for g in GOLDEN], ids=[g[0] for g in GOLDEN])
def test_golden_replies(reply, expected):
    assert parse_queries(reply) == expected


@pytest.mark.parametrize("reply", [
    "", "I cannot help with that.", "{\"hard_query\": [\"unterminated", "{\"hard_query\": [ ",
    "```json\n{hard_query: ['single']}\n```",
    '{"answer": "no expected key"}', '{"hard_query": []}', '{"hard_query": [42, null]}', "[\"a list, not an object\"]",
])
def test_replies_without_usable_json(reply):
    assert parse_queries(reply) is None


def test_negative_reply():
    reply = 'Here is the passage:\n```json\n{"hard_negative_document": "Xylem vessels in oak wood ..."}\n```'
    assert parse_negative(reply) == "Xylem vessels in oak wood ..."
    assert parse_negative('{"hard_query": ["q"]}') is None
    assert parse_negative('{"hard_negative_document": "   "}') is None


def test_objects_inside_an_object_are_not_returned_twice():
    assert json_objects('x {"a": {"b": 1}} y {"c": 2}') == [{"a": {"b": 1}}, {"c": 2}]
