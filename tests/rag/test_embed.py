"""The bundled embedder: batches cut by token length give the vectors of one text at a time, in input order."""

from __future__ import annotations

import numpy as np


def _texts() -> list[str]:
    # Lengths that char order and token order rank differently: digits and long words take more
    # word pieces per character than short common words.
    out = []
    for i in range(70):
        if i % 3 == 0:
            out.append(f"Report {i}: " + " ".join(f"{n * 7919 % 100003}" for n in range(i + 5)))
        elif i % 3 == 1:
            out.append(f"Story {i}. " + "the cat sat on a mat " * (i % 11 + 1))
        else:
            out.append(f"Item {i} " + "antidisestablishmentarianism " * (i % 5 + 1))
    return out


def test_embed_array_matches_one_text_at_a_time_in_input_order(embedder) -> None:
    texts = _texts()
    together = embedder.embed_array(texts, batch_size=8)
    alone = np.stack([embedder.embed_array([t])[0] for t in texts])
    assert together.shape == (len(texts), embedder.dimension)
    assert together.dtype == np.float32
    if embedder.bf16:  # bfloat16 rounding depends on the batch's padded length: each vector is its own, to 1e-4 cosine
        cos = together @ alone.T
        assert (cos.argmax(axis=1) == np.arange(len(texts))).all() and cos.diagonal().min() >= 0.9995
    else:
        np.testing.assert_allclose(together, alone, atol=2e-5)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)


def test_batches_are_cut_from_the_token_order_and_every_text_is_reported(embedder) -> None:
    texts = _texts()
    order = embedder._longest_first(texts)
    lengths = [len(embedder._model.tokenizer(t, truncation=True, max_length=embedder.max_tokens)["input_ids"]) for t in texts]
    assert sorted(order.tolist()) == list(range(len(texts)))
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    # The character order is not the token order here, so the test checks something.
    assert sorted(range(len(texts)), key=lambda i: -len(texts[i])) != order.tolist()
    seen: list[int] = []
    embedder.embed_array(texts, batch_size=16, on_batch=seen.append)
    assert seen == [16, 16, 16, 16, 6]


def test_empty_input_gives_an_empty_array(embedder) -> None:
    assert embedder.embed_array([]).shape == (0, embedder.dimension)
