"""The checks the recipe lacks: copying, pointing at the passage, near-duplicates, each with its numbers."""

from __future__ import annotations

import pytest

from reasonir_rag.errors import InvalidInputError
from reasonir_rag.synth.filters import FilterSettings, QueryFilter, copy_overlap

PASSAGE = ("Osmosis is the diffusion of water through a semipermeable membrane from a region of low solute "
           "concentration to a region of high solute concentration. Red blood cells placed in pure water swell and "
           "may burst, because water moves into the cell faster than it leaves.")
VERBATIM = ("Red blood cells placed in pure water swell and may burst, because water moves into the cell faster "
            "than it leaves. Why?")
PARAPHRASE = ("A hospital accidentally infuses a patient with distilled water instead of saline. Predict what happens "
              "to the patient's erythrocytes over the next minutes and explain the physical cause.")


def test_copy_filter_rejects_a_verbatim_query_and_keeps_a_paraphrase():
    check = QueryFilter()
    copied = check.check(VERBATIM, PASSAGE, "q0")
    assert copied.reason is not None and copied.reason.startswith("copies the passage")
    assert copied.copy_overlap > 0.8
    kept = check.check(PARAPHRASE, PASSAGE, "q1")
    assert kept.reason is None, kept
    assert kept.copy_overlap == 0.0 and kept.words >= 8
    record = kept.to_dict(check.settings)  # why it passed: the numbers beside the thresholds
    assert record["thresholds"]["max_copy_overlap"] == 0.5 and record["reason"] is None


def test_overlap_is_a_share_of_the_query_ngrams():
    assert copy_overlap(PASSAGE, PASSAGE) == 1.0
    assert copy_overlap("completely unrelated words about the stock market today", PASSAGE) == 0.0
    half = "Osmosis is the diffusion of water. Quarterly bond yields rose sharply in Tokyo trading."
    assert 0.1 < copy_overlap(half, PASSAGE) < 0.6


def test_a_query_that_points_at_the_passage_is_rejected():
    result = QueryFilter().check("According to the passage, what would happen to a cell placed in a very salty "
                                 "solution, and why?", PASSAGE, "q0")
    assert result.reason == "refers to the passage itself"


def test_near_duplicates_are_rejected_against_kept_queries_only():
    check = QueryFilter()
    assert check.check(PARAPHRASE, PASSAGE, "q0").reason is None
    dup = check.check(PARAPHRASE.replace("minutes", "hours"), PASSAGE, "q1")
    assert dup.reason is not None and dup.reason.startswith("near-duplicate of q0")
    assert dup.nearest_kept == "q0" and dup.nearest_similarity >= 0.6
    other = check.check("An engineer must choose a membrane for desalinating seawater at low pressure. Which "
                        "membrane property matters most, and what trade-off does it force?", PASSAGE, "q2")
    assert other.reason is None and other.nearest_similarity < 0.2


def test_short_queries_and_bad_thresholds():
    assert QueryFilter().check("Why osmosis?", PASSAGE, "q0").reason.startswith("too short")
    with pytest.raises(InvalidInputError, match="max_copy_overlap"):
        FilterSettings(max_copy_overlap=1.5)


def test_passage_problem_ignores_what_was_kept():
    check = QueryFilter()
    assert check.check(PARAPHRASE, PASSAGE, "q0").reason is None
    assert check.passage_problem(PARAPHRASE, PASSAGE) is None  # a duplicate, but usable for its own seed
    assert check.passage_problem(VERBATIM, PASSAGE).startswith("copies the passage")
