"""The refusal gates on hand-made passages."""

from __future__ import annotations

import dataclasses

from rag.config import Settings
from rag.policy import key_phrases, retrieval_confident
from tests.rag.test_citations import PASSAGES


def test_key_phrases_are_names_and_figures_not_timestamps() -> None:
    q = "Between the report from The Guardian published at 2023-12-12T23:53:03+00:00 and the one at 13:41:30, did Bayern Munich win 3-0?"
    assert key_phrases(q) == ["Guardian", "Bayern Munich"]
    assert key_phrases("Did Joe Burrow throw for 347 yards at 20:15?") == ["Joe Burrow", "347"]


TEXT = "Marquez praised the vote, and the Cowboys beat them 41-35."


def test_a_name_is_found_by_its_last_word_but_not_a_short_or_numeric_one() -> None:
    s = Settings(min_key_phrase_coverage=1.0)
    p = dataclasses.replace(PASSAGES[0], text=TEXT, full_text=TEXT)
    assert retrieval_confident([p], 0.9, 0.0, "Did Mayor Elena Marquez praise the Dallas Cowboys?", s)
    assert not retrieval_confident([p], 0.9, 0.0, "Did Elena Fox praise the vote?", s)  # "Fox": under 4 letters
    assert not retrieval_confident([p], 0.9, 0.0, "Did the vote pass in Ward 12?", s)
    assert not retrieval_confident([p], 0.1, 0.1, "Did Marquez praise the vote?", s)  # nothing close in meaning or words
