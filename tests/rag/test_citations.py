"""Citation parsing, checking and renumbering, with the real embedder."""

from __future__ import annotations

import pytest

from rag.citations import build_index, check_sentences, normalise_markers, parse_markers, render, strip_markers
from rag.types import Passage


def _p(n: int, text: str, title: str = "T") -> Passage:
    return Passage(number=n, chunk_id=f"c{n}", article_id=f"a{n}", title=f"{title}{n}", source="Outlet", date="2024-01-0%d" % n,
                   url=f"https://x.example/{n}", text=text, full_text=text, start=0, end=len(text), score=1.0)


PASSAGES = [
    _p(1, "Riverton City Council approved a $412.6 million budget on Tuesday. Mayor Elena Marquez praised the vote."),
    _p(2, "Storm Ingrid closed the Port of Saltmere on Sunday. Harbour master Yvonne Castellane ordered ships to anchor."),
    _p(3, "The Bank of Veloria held its policy rate at 4.25 percent. Governor Ines Halvorsen cited sticky inflation."),
]


@pytest.mark.parametrize("text,expected", [
    ("A claim [1].", [1]),
    ("Two [1][3].", [1, 3]),
    ("List [1, 2; 3].", [1, 2, 3]),
    ("Range [1-3].", [1, 2, 3]),
    ("Repeat [2] and [2].", [2]),
    ("No markers.", []),
    ("Year [2024] is a number in brackets, not a marker.", []),
])
def test_parse_markers(text: str, expected: list[int]) -> None:
    assert parse_markers(text) == expected


def test_strip_and_normalise_markers() -> None:
    assert strip_markers("The vote passed [1] .") == "The vote passed."
    assert normalise_markers("It closed [Passage 2] and 【3】.") == "It closed [2] and [3]."


@pytest.fixture(scope="module")
def index(embedder):
    return build_index(PASSAGES, embedder.embed)


def test_supported_sentence_keeps_its_citation(index, embedder) -> None:
    checked, notes = check_sentences("The council approved a $412.6 million budget [1].", index, embedder.embed, 0.5)
    assert [c.status for c in checked] == ["ok"]
    assert checked[0].cited == [1]
    assert "412.6 million" in checked[0].quote[1]
    assert notes == []


def test_out_of_range_marker_is_dropped_and_sentence_reassigned(index, embedder) -> None:
    checked, notes = check_sentences("Storm Ingrid closed the Port of Saltmere [7].", index, embedder.embed, 0.5)
    assert checked[0].cited == [2]
    assert checked[0].status == "reassigned"
    assert any("[7]" in n for n in notes)


def test_wrong_passage_is_moved_to_the_supporting_one(index, embedder) -> None:
    checked, _ = check_sentences("The Bank of Veloria held its rate at 4.25 percent [1].", index, embedder.embed, 0.5)
    assert checked[0].cited == [3]
    assert checked[0].status == "reassigned"


def test_uncited_supported_sentence_gets_a_citation(index, embedder) -> None:
    checked, _ = check_sentences("Mayor Elena Marquez praised the vote.", index, embedder.embed, 0.5)
    assert checked[0].cited == [1]
    assert checked[0].status == "added"


def test_unsupported_sentence_is_removed(index, embedder) -> None:
    text = "The council approved a $412.6 million budget [1]. The mayor also announced a new stadium worth $90 million [1]."
    checked, notes = check_sentences(text, index, embedder.embed, 0.5)
    assert [c.status for c in checked] == ["ok", "unsupported"]
    final, cites = render(checked, index, {})
    assert "stadium" not in final
    assert final == "The council approved a $412.6 million budget. [1]"
    assert [c.number for c in cites] == [1]
    assert any("stadium" in n for n in notes)


def test_invented_number_is_not_supported(index, embedder) -> None:
    checked, _ = check_sentences("The Bank of Veloria held its policy rate at 5.75 percent [3].", index, embedder.embed, 0.5)
    assert checked[0].status == "unsupported"


def test_renumbering_follows_first_appearance(index, embedder) -> None:
    text = "Storm Ingrid closed the Port of Saltmere [2]. The Bank of Veloria held its policy rate at 4.25 percent [3]."
    checked, _ = check_sentences(text, index, embedder.embed, 0.5)
    final, cites = render(checked, index, {})
    assert final == "Storm Ingrid closed the Port of Saltmere. [1] The Bank of Veloria held its policy rate at 4.25 percent. [2]"
    assert [(c.number, c.article_id) for c in cites] == [(1, "a2"), (2, "a3")]
    assert cites[0].url == "https://x.example/2" and cites[0].date == "2024-01-02"


def test_refusal_sentence_yields_no_citations(index, embedder) -> None:
    checked, _ = check_sentences("The archive does not say.", index, embedder.embed, 0.5)
    assert checked[0].status == "refusal"
    assert render(checked, index, {}) == ("", [])


def test_bare_yes_is_not_an_answer_alone_but_kept_with_a_claim(index, embedder) -> None:
    checked, _ = check_sentences("Yes [1].", index, embedder.embed, 0.5)
    assert render(checked, index, {}) == ("", [])
    checked, _ = check_sentences("Yes. Riverton City Council approved a $412.6 million budget [1].", index, embedder.embed, 0.5)
    final, cites = render(checked, index, {})
    assert final.startswith("Yes.") and final.endswith("[1]") and len(cites) == 1


def test_markers_after_stray_punctuation_are_checked_with_the_sentence_before(index, embedder) -> None:
    # Seen from the 1.5B model: a sentence, then ",,, [2][3][1]". Those markers are no connective's: they are
    # checked against the sentence, and the passages that do not support it are not cited.
    checked, _ = check_sentences("Storm Ingrid closed the Port of Saltmere [2]. ,,, [2][3][1]", index, embedder.embed, 0.5)
    final, cites = render(checked, index, {})
    assert final == "Storm Ingrid closed the Port of Saltmere. [1]"
    assert [c.article_id for c in cites] == ["a2"]


def test_sentence_supported_only_by_two_passages_together_cites_both(index, embedder) -> None:
    text = "Storm Ingrid closed the Port of Saltmere, while the Bank of Veloria held its policy rate at 4.25 percent."
    checked, _ = check_sentences(text, index, embedder.embed, 0.5)
    assert checked[0].status == "joint" and checked[0].cited == [2, 3]


def test_unrelated_passages_do_not_add_up_to_support(index, embedder) -> None:
    checked, _ = check_sentences("Mayor Elena Marquez ordered ships to anchor because inflation was sticky.", index, embedder.embed, 0.5)
    assert checked[0].status == "unsupported"


def test_restating_the_question_is_not_support(index, embedder) -> None:
    q = "Which storm closed the Port of Saltmere?"
    claim = "The storm that closed the Port of Saltmere was a hurricane named Zelda [2]."
    checked, _ = check_sentences(claim, index, embedder.embed, 0.5, question=q)
    assert checked[0].status == "unsupported"
    checked, _ = check_sentences("Storm Ingrid closed the Port of Saltmere [2].", index, embedder.embed, 0.5, question=q)
    assert checked[0].cited == [2]
