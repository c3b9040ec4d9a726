"""What a generator is: one small interface, so the answer pipeline never asks which one it has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Iterator, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    import numpy as np

    from rag.citations import PassageIndex
    from rag.config import Settings
    from rag.types import Passage


@dataclass(frozen=True)
class GenerationInput:
    """Everything a generator may use to write an answer (nothing in it is changed by a generator)."""

    question: str  # the standalone question (what was searched)
    user_question: str  # the user's own words this turn (differs from ``question`` for a rewritten follow-up)
    date_phrases: tuple[str, ...]  # date phrases of the question that became filters
    passages: "Sequence[Passage]"  # numbered as the generator must cite them; ``text`` holds the selected sentences
    index: "Mapping[int, PassageIndex]"  # each passage's sentences and their vectors
    query_vector: "np.ndarray"  # the question's embedding
    # The outlets the question names, each with the numbers of its own passages (best first); () when it names none.
    parts: tuple[tuple[str, tuple[int, ...]], ...] = ()


class Generator(Protocol):
    """An answer generator. Adding one: a new module under ``rag/generators/`` and one line in the registry.

    ``name`` is what ``BYLINE_GENERATOR`` and the UI use; ``label`` and ``cost`` are shown to people.
    ``uses_model`` says the answer is a model's own words (its yes/no verdicts are judgments worth
    showing, and its text must be checked for addressing the question); a generator that only quotes
    the passages (``uses_model = False``) does its own relevance gate.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    cost: ClassVar[str]
    uses_model: ClassVar[bool]

    def __init__(self, settings: "Settings") -> None: ...

    @classmethod
    def check(cls, settings: "Settings") -> None:
        """Raise a BylineError a person can act on when this generator cannot run with these settings."""
        ...

    def stream(self, inp: GenerationInput) -> Iterator[str]:
        """The answer as text deltas, with ``[n]`` markers pointing at ``inp.passages``."""
        ...

    def prompt_tokens(self, inp: GenerationInput) -> int:
        """About how many prompt tokens ``stream`` sends to a model (0 without one)."""
        ...

    def complete(self, system: str, user: str, max_tokens: int) -> str | None:
        """One short reply to a free-form prompt (used to rewrite follow-ups), or None without a model."""
        ...

    def stream_reply(self, system: str, user: str, max_tokens: int) -> Iterator[str]:
        """A free-form prompt's reply as text deltas (none without a model)."""
        ...

    def yes_probability(self, system: str, user: str) -> float | None:
        """For a prompt whose reply is Yes or No: the model's probability of "Yes" against "No" for its first
        token, or None when there is no model or it gives no log-probabilities (then ``complete`` is read)."""
        ...
