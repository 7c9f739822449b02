"""_common/tokens.py: the one cut-to-N-tokens, against tokenizing the whole text (real Llama-3.1 and Qwen2.5
tokenizers), and the special tokens each tokenizer adds."""

from __future__ import annotations

import random

import pytest

from reasonir_rag._common.tokens import cut_by_estimate, cut_to_tokens, special_tokens, token_ids


@pytest.fixture(scope="module")
def llama(tiny_reasonir_dir):
    """offline.llama3_tokenizer() as the session model saved it (converting the tiktoken file again costs ~4 s)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_reasonir_dir))


@pytest.fixture(scope="module")
def qwen(tiny_qwen_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_qwen_dir))


def _whole_text_cut(tokenizer, text: str, n: int) -> str:
    """The reference: tokenize everything, cut after the n-th token's last character."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return text if len(enc["input_ids"]) <= n else text[: enc["offset_mapping"][n - 1][1]]


TEXTS = [
    "Ice floats because solid water is less dense than liquid water. " * 40,
    "    indented     code\n\n\n\tlines with   runs of spaces" * 30,
    "数学の問題: 直角三角形の斜辺を求めよ。" * 50 + " émigré naïve café " * 20,
    "x" * 5000,  # one long run: few tokens per window
    "def f(x):\n    return x ** 2  # 🙂🙂🙂\n" * 60,
]


@pytest.mark.parametrize("name", ["llama", "qwen"])
def test_the_windowed_cut_equals_the_whole_text_cut(name, request):
    tokenizer = request.getfixturevalue(name)
    rng = random.Random(0)
    for text in TEXTS:
        for n in (1, 2, 7, 63, 64, 65, 300, 10_000):
            got, reference = cut_to_tokens(tokenizer, text, n), _whole_text_cut(tokenizer, text, n)
            assert text.startswith(got) and len(token_ids(tokenizer, got)) <= n
            if len(token_ids(tokenizer, reference)) <= n:
                assert got == reference, (text[:30], n)
            else:  # the reference cut a multi-byte character into more tokens than it keeps
                assert reference.startswith(got) and len(reference) - len(got) <= 4
        cut = rng.randrange(1, len(text))
        assert cut_to_tokens(tokenizer, text[:cut], 10) == _whole_text_cut(tokenizer, text[:cut], 10)
    assert cut_to_tokens(tokenizer, "anything", 0) == "" and cut_to_tokens(tokenizer, "", 5) == ""


def test_a_huge_text_is_not_tokenized_whole(llama):
    huge = "The mitochondrion is the powerhouse of the cell. " * 200_000  # 10 MB
    seen: list[int] = []

    def recording(text, **kwargs):  # the real tokenizer, noting how much text each call is given
        seen.append(len(text))
        return llama(text, **kwargs)

    small = cut_to_tokens(recording, huge, 254)
    assert small == _whole_text_cut(llama, huge[:200_000], 254) and len(token_ids(llama, small)) == 254
    assert max(seen) <= 8 * 254 * 2 < len(huge) // 1000  # a window of the text, never the whole 10 MB


def test_special_tokens_are_what_each_tokenizer_adds(llama, qwen):
    head, tail = special_tokens(llama)
    assert head == [llama.bos_token_id] and tail == []
    assert special_tokens(qwen) == ([], [])


def test_the_estimate_cuts_whole_characters():
    assert cut_by_estimate("abcdef", 1) == "abc" and cut_by_estimate("abc", 1) == "abc"
    assert cut_by_estimate("ééé", 1) == "é"  # 3 bytes: one 2-byte character fits, the next would be split
    assert cut_by_estimate("abc", 0) == ""
