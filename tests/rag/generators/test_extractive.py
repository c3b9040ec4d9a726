"""The quotes-only generator answers the question asked: real Chroma, real embedder, hand-written articles."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag import ask
from rag.config import Settings

TRIAL = """---
title: "Lumex founder testifies in his own defence"
source: Harbor Ledger
published_at: 2024-03-05
url: https://harborledger.example/2024/03/05/lumex-founder-testifies
---
Dara Quinlan, the founder of the collapsed crypto exchange Lumex, took the witness stand on Tuesday in his fraud trial.

Quinlan told the jury that he made serious mistakes running Lumex but never meant to take customers' money.

Prosecutors say Lumex customers lost more than $900 million. Whether his account is believable is another matter. That answer ultimately lies with the jury, which is expected to begin deliberating next week.
"""

FESTIVAL = """---
title: "Saltmere film festival breaks its attendance record"
source: Valley Courier
published_at: 2024-06-20
url: https://valleycourier.example/2024/06/20/saltmere-festival-record
---
The Saltmere film festival closed on Sunday after ten days of screenings in the old harbour sheds.

Organisers counted 48,000 visitors this year, more than in any earlier edition of the festival.

Festival director Ines Okafor announced that next year's festival will move to the new Riverside Arts Centre and add a documentary competition.
"""


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder: Path = tmp_path_factory.mktemp("articles")
    (folder / "trial.md").write_text(TRIAL)
    (folder / "festival.md").write_text(FESTIVAL)
    s = Settings(data_dir=tmp_path_factory.mktemp("archive"), generator="extractive")
    report = Ingestor(s).ingest([str(folder)])
    assert report.added == 2 and not report.errors
    return s


@pytest.mark.parametrize("question,answer,not_answer", [
    # The verb asked for, in another tense ("tell"/"told"), is matched; a sentence that only repeats the topic word
    # ("… lies with the jury") adds nothing the question asks and is left out.
    ("What did Dara Quinlan tell the jury?", "never meant to take customers' money", "ultimately lies with the jury"),
    # "announce"/"announced": the announcement, not the sentence with the figure.
    ("What did the festival director announce?", "Riverside Arts Centre", "48,000 visitors"),
])
def test_quotes_answer_the_question_asked(archive: Settings, question: str, answer: str, not_answer: str) -> None:
    a = ask(question, settings=archive)
    assert not a.refused, a.text
    assert answer in a.text
    assert not_answer not in a.text
