"""The engine: one object that owns the parts of an answer (store, embedder, retriever, generators)
and runs the steps of ``rag.pipeline`` in order.

    from rag import Engine, Settings
    engine = Engine(Settings(generator="extractive"))
    print(engine.ask("Who is Ali al-Daffayi?"))

``rag.ask`` / ``rag.ask_stream`` use a default engine (``default_engine``), built on first use.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from typing import Any, Iterator

from rag.compose import (
    SHORT_KINDS,
    compose_digest,
    compose_entity,
    compose_first,
    compose_order,
    compose_reported,
    compose_verdict,
    sentences_prompt,
    short_reply,
)
from rag.config import Settings
from rag.embed import SentenceTransformerEmbedding, get_embedder
from rag.generators import create_generator, resolve_generator_name
from rag.generators.base import Generator
from rag.pipeline import (
    Context,
    History,
    Retrieved,
    SearchPlan,
    clean_question,
    digest_plan,
    generation_input,
    newest,
    normalize_history,
    on_topic,
    plan_search,
    retrieve,
    rewrite_question,
    select_context,
    short_context,
    verify,
    widen,
)
from rag.planner import ARTICLES, DIGEST, ENTITY, FIRST, OUTLET, PUBLISHED, YES_NO, QuestionPlan, is_digest, plan_question
from rag.policy import refusal_text, retrieval_confident
from rag.prompts import WARM_PROMPTS
from rag.retrieve import Retriever
from rag.store import Store
from rag.text import approx_tokens, content_words
from rag.types import Answer, Filters, Passage, Sources

log = logging.getLogger(__name__)

# Settings each part is built from: an engine for new settings keeps the parts whose fields are unchanged.
_EMBEDDER_FIELDS = ("embedder", "embed_batch_size")
_STORE_FIELDS = ("data_dir", "chroma_path", "chroma_url", "chroma_host", "chroma_port", "chroma_token", "collection")
_RETRIEVER_FIELDS = (*_EMBEDDER_FIELDS, *_STORE_FIELDS, "candidates", "top_k", "max_chunks_per_article", "rrf_k", "reranker_path")


class Engine:
    """Everything a question needs, built from one Settings. Thread-safe: the chat shares one."""

    def __init__(self, settings: Settings, *, embedder: SentenceTransformerEmbedding | None = None, store: Store | None = None,
                 retriever: Retriever | None = None) -> None:
        self.settings = settings
        # Resolved now, so an explicit generator that cannot run fails here, not mid-answer.
        self.generator_name = resolve_generator_name(settings)
        self.embedder = embedder or get_embedder(settings)
        self.store = store or Store(settings)
        self.retriever = retriever or Retriever(settings, self.store, self.embedder)
        self._generators: dict[str, Generator] = {}
        self._lock = threading.Lock()
        self._warm = threading.Event()

    def generator(self, name: str | None = None) -> Generator:
        """The named generator (default: the configured one), created on first use and kept."""
        resolved = resolve_generator_name(self.settings, name) if name else self.generator_name
        with self._lock:
            if resolved not in self._generators:
                self._generators[resolved] = create_generator(self.settings, resolved)
            return self._generators[resolved]

    def warm_up(self) -> None:
        """Load what a first question would otherwise wait for: the keyword index, the embedder's first
        pass and the generator's model, which reads the openings of its prompts (so its prompt cache holds
        them). Once only. Failures are logged, not raised: the first question then reports them."""
        if self._warm.is_set():
            return
        t = time.perf_counter()
        try:
            self.retriever.archive_months()
            self.embedder.get_query_embedding("warm up")
            gen = self.generator()
            if gen.uses_model:
                for system, user in WARM_PROMPTS:
                    gen.complete(system, user, 1)
        except Exception as exc:  # noqa: BLE001 - a warm-up must never take the server down
            log.warning("warm-up failed (%s); the first question will load what is missing", exc)
            return
        finally:
            self._warm.set()
        log.info("engine warm in %.1f s", time.perf_counter() - t)

    @property
    def warm(self) -> bool:
        """Whether ``warm_up`` has finished (a failed one too: waiting longer would load nothing more)."""
        return self._warm.is_set()

    def reconfigured(self, settings: Settings) -> "Engine":
        """An engine for ``settings`` that keeps this one's parts where their settings are unchanged."""
        if settings == self.settings:
            return self

        def same(fields: tuple[str, ...]) -> bool:
            return all(getattr(settings, f) == getattr(self.settings, f) for f in fields)

        return Engine(settings, embedder=self.embedder if same(_EMBEDDER_FIELDS) else None,
                      store=self.store if same(_STORE_FIELDS) else None,
                      retriever=self.retriever if same(_RETRIEVER_FIELDS) else None)

    # --- asking -------------------------------------------------------------------------------
    def ask(self, question: str, *, history: History = None, filters: Filters | dict[str, Any] | None = None,
            generator: str | None = None) -> Answer:
        """Answer a question from the archive, with verified numbered citations."""
        final = None
        for piece in self.ask_stream(question, history=history, filters=filters, generator=generator):
            if isinstance(piece, Answer):
                final = piece
        assert final is not None
        return final

    def _plan(self, standalone: str, filters: Filters | dict[str, Any] | None) -> tuple[SearchPlan, QuestionPlan]:
        outlets = self.retriever.archive_sources()
        qplan = plan_question(standalone, outlets)
        chosen = Filters.coerce(filters)
        plan = plan_search(standalone, chosen, self.settings.reference_date or dt.date.today(),
                           self.retriever.archive_months(), outlets, qplan.outlets)
        if is_digest(standalone, plan.date_phrases, qplan.outlets, plan.recency or not chosen.is_empty()):
            return digest_plan(plan, qplan.outlets), dataclasses.replace(qplan, kind=DIGEST)
        if qplan.kind == ARTICLES:  # searched for what the articles must be about, not for "list the articles"
            return dataclasses.replace(plan, question=qplan.topic), qplan
        return plan, qplan

    def _retrieve(self, plan: SearchPlan, qplan: QuestionPlan, k: int | None = None) -> Retrieved:
        k = k or self.settings.top_k
        if qplan.kind == DIGEST:  # what the archive holds for those outlets or dates: its newest articles, not the likeliest
            return newest(plan, self.retriever, self.embedder, k)
        if qplan.kind == ARTICLES:  # a list of articles: room for top_k of them, whatever each one's passages
            k *= self.settings.max_chunks_per_article
        return retrieve(plan, self.retriever, self.embedder, k, qplan, self.settings.max_chunks_per_article)

    def search(self, question: str, *, k: int | None = None, filters: Filters | dict[str, Any] | None = None) -> list[Passage]:
        """The passages Byline's retrieval finds for a standalone question, best first (dates read from it,
        one more search per outlet it names): what an answer starts from. No generator runs."""
        plan, qplan = self._plan(question, filters)
        found = self._retrieve(plan, qplan, k)
        if not found.passages and (wide := widen(plan)) is not None:
            found = self._retrieve(wide, qplan, k)
        return list(found.passages)

    def ask_stream(self, question: str, *, history: History = None, filters: Filters | dict[str, Any] | None = None,
                   generator: str | None = None) -> Iterator[Sources | str | Answer]:
        """Yield ``Sources`` (the passages found, when there are any), then text deltas as the answer is
        written, then the final verified ``Answer`` (whose text may differ from what was streamed:
        unsupported sentences are removed)."""
        t0 = time.perf_counter()
        s = self.settings
        gen = self.generator(generator)
        timings: dict[str, float] = {}
        clean = clean_question(question, s)

        t = time.perf_counter()
        standalone = rewrite_question(clean.text, normalize_history(history), gen)                      # 1. follow-ups
        timings["rewrite"] = time.perf_counter() - t
        plan, qplan = self._plan(standalone, filters)                                                   # 2. dates, 3. what is asked
        focus = plan.question  # what the passages must be about ("List the articles about Iraq": Iraq)

        def search(p: SearchPlan) -> Retrieved:
            t = time.perf_counter()
            found = self._retrieve(p, qplan)                                                            # 4. hybrid retrieval
            timings["retrieve"] = time.perf_counter() - t
            # A list of articles is chosen by its filters or topic, not by closeness to the question's words.
            return found if qplan.kind in (DIGEST, ARTICLES) else on_topic(found, p.question, s.off_topic_gap)  # 5. on topic

        def check(found: Retrieved) -> tuple[Context | None, bool]:
            if not found.passages:
                return None, False
            t = time.perf_counter()
            budget = min(s.context_tokens, s.article_context_tokens * len({p.article_id for p in found.passages}))
            context = select_context(found, focus, self.embedder, budget)                              # 5. tight context
            timings["select"] = time.perf_counter() - t
            return context, retrieval_confident(context.passages, context.best_cosine, context.best_overlap, focus, s)

        def sources(found: Retrieved) -> Sources:  # sources first: retrieval takes a fraction of a second, writing takes many
            timings["sources"] = time.perf_counter() - t0
            return Sources(list(found.passages), standalone, plan.applied, timings["sources"])

        found = search(plan)
        wide = widen(plan)
        if wide is None and found.passages:
            yield sources(found)
        context, confident = check(found)
        plan_notes: tuple[str, ...] = ()
        if wide is not None:  # "last week's game": when the dates match nothing usable, they describe, they need not filter
            if not confident:
                wide_found = search(wide)
                wide_context, wide_confident = check(wide_found)
                if wide_confident:
                    plan, found, context, confident = wide, wide_found, wide_context, True
                    plan_notes = (f"{wide.applied['dates_not_matched']}.",)
            if found.passages:
                yield sources(found)

        def finish(text: str, passages: Any, notes: tuple[str, ...] = (), **fields: Any) -> Answer:
            return Answer(question=question, text=text, passages=list(passages), standalone_question=standalone, filters=plan.applied,
                          generator=gen.name, notes=[*clean.notes, *plan_notes, *notes], timings={**timings, "total": time.perf_counter() - t0}, **fields)

        def refuse(passages: Any, **fields: Any) -> Answer:
            return finish(refusal_text(standalone, plan.applied, self._chunk_count(), passages), passages, refused=True, **fields)

        if context is None or not (confident or qplan.kind == DIGEST):  # 8. nothing found, or weak retrieval
            answer = refuse(context.passages if context is not None else ())
            yield answer.text
            yield answer
            return

        t = time.perf_counter()
        inp = generation_input(plan, clean.text, context, found)
        composed, tokens = None, 0
        followup: tuple[str, str] | None = None  # the sentences prompt that continues a short reply's cached prefix
        if qplan.kind == DIGEST:                                                                        # 6a. from metadata
            composed = compose_digest(inp, plan.filters, s.top_k)
        elif qplan.kind == ARTICLES:  # those that share the topic's words or are close to it in meaning
            words = set(content_words(qplan.topic))
            composed = compose_digest(inp, plan.filters, s.top_k, qplan.topic, lambda p: p.dense_score >= s.min_dense_score
                                      or bool(words & set(content_words(p.evidence()))))
        elif qplan.kind in (OUTLET, PUBLISHED):
            composed = compose_reported(qplan.topic or standalone, inp, self.embedder.embed, s.min_support, qplan.kind == PUBLISHED)
        elif qplan.kind == FIRST:                                                                       # 6b. dates compared
            composed = compose_first(qplan, inp, found.parts, self.embedder.embed, s.min_support)
        elif qplan.kind == YES_NO:                                                                      # 6b. "did A report it before B?"
            composed = compose_order(qplan, inp, found.parts, self.embedder.embed)
        if composed is None and qplan.kind in SHORT_KINDS and gen.uses_model:                           # 6c. a short reply
            short = short_context(found, standalone, self.embedder, s.short_top_k, s.short_context_tokens)
            short_inp = generation_input(plan, clean.text, short, found)
            value, tokens = short_reply(qplan, standalone, short, found.parts, gen, s.yes_threshold)
            timings["short_reply"] = time.perf_counter() - t
            if value and qplan.kind == ENTITY:
                composed = compose_entity(value, short_inp, found.parts, self.embedder.embed, s)
            elif value:
                composed = compose_verdict(qplan, value, short_inp, found.parts, self.embedder.embed)
            if composed is not None:
                inp = short_inp
            else:  # no usable reply: sentences from the same passages, most of the prompt already in the model's cache
                context, inp, followup = short, short_inp, sentences_prompt(standalone, short)
        if composed is not None and composed[1]:
            text, citations, notes = composed
            timings["first_token"] = time.perf_counter() - t0
            timings["generate"] = time.perf_counter() - t
            yield text
            yield finish(text, inp.passages, tuple(notes), citations=list(citations), refused=False, prompt_tokens=tokens)
            return

        chunks: list[str] = []                                                                          # 6d. free text
        deltas = gen.stream(inp) if followup is None else gen.stream_reply(*followup, s.max_new_tokens)
        for delta in deltas:
            if not chunks:
                timings["first_token"] = time.perf_counter() - t0
            chunks.append(delta)
            yield delta
        raw = "".join(chunks)
        timings["generate"] = time.perf_counter() - t
        t = time.perf_counter()
        checked = verify(raw, inp, gen.uses_model, self.embedder, s)                                    # 7. verification
        timings["verify"] = time.perf_counter() - t
        tokens += gen.prompt_tokens(inp) if followup is None else approx_tokens("".join(followup))
        if not checked.citations:                                                                       # 8. nothing supported
            yield refuse(context.passages, prompt_tokens=tokens, notes=checked.notes)
            return
        yield finish(checked.text, context.passages, checked.notes, citations=list(checked.citations), refused=False, prompt_tokens=tokens)

    def _chunk_count(self) -> int:
        try:
            return self.store.count()
        except Exception:  # noqa: BLE001 - a refusal must not fail on a stats call
            return -1


_default: Engine | None = None
_default_lock = threading.Lock()


def default_engine(settings: Settings | None = None) -> Engine:
    """The engine ``rag.ask`` uses: built on first use, rebuilt (sharing unchanged parts) for other settings."""
    global _default
    settings = settings or Settings()
    with _default_lock:
        _default = Engine(settings) if _default is None else _default.reconfigured(settings)
        return _default


def ask(question: str, *, history: History = None, filters: Filters | dict[str, Any] | None = None,
        settings: Settings | None = None) -> Answer:
    """Answer a question from the archive, with verified numbered citations."""
    return default_engine(settings).ask(question, history=history, filters=filters)


def ask_stream(question: str, *, history: History = None, filters: Filters | dict[str, Any] | None = None,
               settings: Settings | None = None) -> Iterator[Sources | str | Answer]:
    """Yield ``Sources`` (as soon as passages are found), text deltas as the answer is written, then the final verified ``Answer``."""
    yield from default_engine(settings).ask_stream(question, history=history, filters=filters)
