"""add()/add_embeddings() given something that only looks like a list: refused by the argument's name, nothing
written (real Chroma, tiny real encoder)."""

from __future__ import annotations

import numpy as np
import pytest

from reasonir_rag.encoding.recorded import RecordedEncoder
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.index.store import ChromaStore


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"metadatas": {"a": 1}}, "add(): metadatas must be a list (one mapping or None per text), got a dict"),
        ({"metadatas": "a=1"}, "add(): metadatas must be a list (one mapping or None per text), got a str"),
        ({"ids": "d0"}, "add(): ids must be a list (one string per text), got a str"),
        ({"ids": {"d0": 1}}, "add(): ids must be a list (one string per text), got a dict"),
        ({"ids": {"d0"}}, "add(): ids must be a list (one string per text), got a set"),
        ({"ids": 7}, "add(): ids must be a list (one string per text), got an int"),
    ],
)
def test_add_names_the_argument_that_is_not_a_list(tmp_path, tiny_encoder, kwargs, named):
    store = ChromaStore("args", encoder=tiny_encoder, path=tmp_path / "chroma")
    with pytest.raises(InvalidInputError) as caught:
        store.add(["one text about enzymes"], **kwargs)
    assert str(caught.value) == named
    assert store.count() == 0


def test_add_refuses_texts_given_as_a_dict(tmp_path, tiny_encoder):
    store = ChromaStore("args", encoder=tiny_encoder, path=tmp_path / "chroma")
    with pytest.raises(InvalidInputError, match=r"add\(\): texts_or_documents must be a list .*got a dict"):
        store.add({"d0": "a text about enzymes"})
    assert store.count() == 0
    assert store.add("a text about enzymes" for _ in range(1)).added == 1  # an iterable of texts is still fine


def test_add_embeddings_names_its_arguments(tmp_path, tiny_encoder):
    store = ChromaStore("emb", encoder=RecordedEncoder(tiny_encoder.fingerprint), path=tmp_path / "chroma")
    vectors = np.ones((1, tiny_encoder.dim), dtype=np.float32)
    with pytest.raises(InvalidInputError, match=r"add_embeddings\(\): texts must be a list .*got a dict"):
        store.add_embeddings(["d0"], {"d0": "text"}, vectors)
    with pytest.raises(InvalidInputError, match=r"add_embeddings\(\): ids must be a list .*got a str"):
        store.add_embeddings("d0", ["text"], vectors)
    with pytest.raises(InvalidInputError, match=r"add_embeddings\(\): metadatas must be a list .*got a dict"):
        store.add_embeddings(["d0"], ["text"], vectors, {"a": 1})
    assert store.count() == 0


@pytest.mark.parametrize("name", ["ab", "a..b", "-ab", "abc-", "a b c", "127.0.0.1", "abé", "a" * 513, ""])
def test_an_invalid_collection_name_is_refused_before_a_folder_is_made(tmp_path, name):
    from reasonir_rag.index.collections import check_collection_name

    with pytest.raises(InvalidInputError, match=r"invalid collection name .*3-512 characters"):
        ChromaStore(name, encoder=None, path=tmp_path / "chroma")  # type: ignore[arg-type]  # refused before use
    assert not (tmp_path / "chroma").exists()
    assert check_collection_name("my-books.v2") == "my-books.v2" and check_collection_name("1.2.3") == "1.2.3"
