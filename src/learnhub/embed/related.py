"""The related-items workflow: ``hub.embed.related(group, items, publish=...)``.

One flow per group (e.g. the discussions of a meeting that just ended)::

    start ─┬─ embed(item 1) ─┬─ similar(item 1) ── rerank(item 1) ── publish(item 1)
           ├─ embed(item 2) ─┼─ similar(item 2) ── rerank(item 2) ── publish(item 2)
           └─ ...            └─ ...

Every ``similar`` job waits on *all* the group's ``embed`` jobs (a real fan-in): on its own
item's embed with a ``cancel`` edge (no vector, nothing to search with: the item's branch is
cancelled), on the others' with ``ignore`` edges (a candidate that failed to embed is just not
found). ``similar`` searches the stored embeddings for the item's nearest neighbours outside
its group; ``rerank`` scores them again with vectors of the *rerank template* of the texts
(e.g. without the meeting header line, which otherwise makes everything of one meeting look
alike), persisted under their own model name (``"<model>@<template>"``) so a text is never
embedded twice; then it spawns the ``publish`` task's job (in the flow, after itself) with
``{ref, related: [[ref, score], ...]}``, best first.

Candidates from the history need their rerank vectors: embed the backlog with
:func:`embed_backlog` (same ``rerank_template``), or name a text source
(:func:`register_text_source`) from which ``rerank`` fetches and embeds the missing ones.
Candidates with neither keep their first-stage score.

Priorities, as the reference settled them (smaller runs first): an ad-hoc query
(:data:`AD_HOC_PRIORITY`) before the related items of a meeting that just ended
(:data:`MEETING_PRIORITY`) before backlog re-embedding (:data:`BACKLOG_PRIORITY`); within
a priority, older flows first (the engine's order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from learnhub.embed.embedders import default_name, get_embedder, register
from learnhub.errors import InvalidInput
from learnhub.jobs.model import PermanentError
from learnhub.jobs.queue import TaskDef

if TYPE_CHECKING:
    from learnhub.jobs.queue import Jobs
    from learnhub.jobs.worker import JobContext

__all__ = [
    "AD_HOC_PRIORITY",
    "BACKLOG_PRIORITY",
    "EMBED_QUEUE",
    "MEETING_PRIORITY",
    "TASKS",
    "embed_backlog",
    "register_template",
    "register_text_source",
    "related",
    "rerank_model",
]

log = logging.getLogger("learnhub.embed")

EMBED_QUEUE = "embed"
AD_HOC_PRIORITY = 10  # a user's ad-hoc query: first
MEETING_PRIORITY = 50  # the related items of a meeting that just ended
BACKLOG_PRIORITY = 100  # re-embedding the backlog: last
BATCH_SIZE = 64  # texts per model call in an ``embed`` job
# Neighbours of an item handed from ``similar`` to ``rerank``. Many: the first stage scores
# whole texts, header included, and a meeting header pulls that team's other meetings ahead
# (on the test corpus, a labelled relative ranks up to ~100th before the rerank).
CANDIDATES = 50

START_TASK = "embed.related_start"
EMBED_TASK = "embed"
SIMILAR_TASK = "similar"
RERANK_TASK = "rerank"

# --- rerank templates and text sources -----------------------------------------------------

_templates: dict[str, Callable[[str], str]] = {}
_text_sources: dict[str, Callable[[list[str]], Mapping[str, str]]] = {}


def register_template(name: str, fn: Callable[[str], str]) -> None:
    """Make ``rerank_template=name`` rewrite each text with ``fn(text)`` before reranking."""
    if not isinstance(name, str) or not name or "@" in name:
        raise InvalidInput(f"a template name must be a non-empty string without '@': {name!r}")
    _templates[name] = fn


def register_text_source(name: str, fn: Callable[[list[str]], Mapping[str, str]]) -> None:
    """Make ``texts=name`` fetch the texts of candidates (``fn(refs) -> {ref: text}``) whose
    rerank vectors are missing, so ``rerank`` can embed them."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"a text source name must be a non-empty string: {name!r}")
    _text_sources[name] = fn


def strip_header(text: str) -> str:
    """The text without its first line (the meeting header), unless nothing would be left."""
    head, sep, rest = text.partition("\n")
    return rest if sep and rest.strip() else text


register_template("strip_header", strip_header)


def _template(name: str) -> Callable[[str], str]:
    fn = _templates.get(name)
    if fn is None:
        known = ", ".join(sorted(_templates)) or "none"
        raise InvalidInput(f"unknown rerank template {name!r}; registered: {known}")
    return fn


class _Alias:
    """The base model under another name: rerank vectors are stored in their own namespace."""

    def __init__(self, name: str, base: str) -> None:
        self.name = name
        self._base = get_embedder(base)
        self.dim = self._base.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._base.embed(texts)


def rerank_model(model: str, template: str | None) -> str:
    """The model name rerank vectors of ``template`` are stored under (registered on use)."""
    if template is None:
        return model
    _template(template)
    name = f"{model}@{template}"
    try:
        get_embedder(name)
    except InvalidInput:
        get_embedder(model)  # an unknown base model is the caller's error, said plainly
        register(lambda: _Alias(name, model), name)
    return name


# --- tasks ---------------------------------------------------------------------------------


def _start(ctx: JobContext, group: str, n: int) -> int:
    return n


def _embed(
    ctx: JobContext,
    refs_texts: dict[str, str],
    model: str | None = None,
    rerank_template: str | None = None,
    force: bool = False,
) -> int:
    """Embed ``{ref: text}`` in batches (one model call each); with a rerank template, also
    store the templated texts' vectors. Bad input fails at once, without retries."""
    try:
        model = model or default_name()
        refs = list(refs_texts)
        done = 0
        for i in range(0, len(refs), BATCH_SIZE):
            batch = {r: refs_texts[r] for r in refs[i : i + BATCH_SIZE]}
            done += ctx.hub.embed.put_many(batch, model, force)
            if rerank_template is not None:
                fn = _template(rerank_template)
                ctx.hub.embed.put_many(
                    {r: fn(t) for r, t in batch.items()},
                    rerank_model(model, rerank_template),
                    force,
                )
        return done
    except InvalidInput as exc:
        raise PermanentError(str(exc)) from exc


def _group_prefix(group: str) -> str:
    return group if group.endswith("/") else group + "/"


def _similar(
    ctx: JobContext,
    ref: str,
    group: str,
    exclude: list[str],
    n: int,
    model: str,
    rerank_template: str | None = None,
) -> list[list[Any]]:
    """The ``n`` stored refs nearest to ``ref``'s vector, none of its group, best first; with
    a rerank template, also the ``n`` nearest by the templated vectors (a meeting header can
    push a relative far down the first list), after them."""
    found = _nearest(ctx, ref, group, exclude, n, model)
    if rerank_template is not None:
        seen = {r for r, _ in found}
        rmodel = rerank_model(model, rerank_template)
        found += [rs for rs in _nearest(ctx, ref, group, exclude, n, rmodel) if rs[0] not in seen]
    return found


def _nearest(
    ctx: JobContext, ref: str, group: str, exclude: list[str], n: int, model: str
) -> list[list[Any]]:
    vec = ctx.hub.embed.get(ref, model)
    if vec is None:
        raise PermanentError(f"{ref!r} has no {model} embedding; was it embedded?")
    prefix = _group_prefix(group)
    excluded = {ref, *exclude}
    want = n + len(excluded)
    while True:
        found = ctx.hub.embed.search(vec, k=want, model=model, exclude=excluded)
        kept = [[r, s] for r, s in found if not r.startswith(prefix)]
        if len(kept) >= n or len(found) < want:  # enough, or nothing more to find
            return kept[:n]
        want *= 2


def _rerank(
    ctx: JobContext,
    ref: str,
    text: str,
    k: int,
    model: str,
    publish: str,
    rerank_template: str | None = None,
    texts: str | None = None,
) -> list[list[Any]]:
    """Score the candidates found by this item's ``similar`` job with rerank vectors, keep
    the best ``k`` and spawn the ``publish`` job with them."""
    hub = ctx.hub
    parents = {p for p, c, _ in hub.jobs.edges(ctx.job.flow_id) if c == ctx.job.id}
    similar = [j for p in parents if (j := hub.jobs.get(p)) and j.task == SIMILAR_TASK]
    if len(similar) != 1 or similar[0].state != "succeeded":
        raise PermanentError(f"rerank of {ref!r} needs exactly one succeeded similar job")
    candidates = [(r, float(s)) for r, s in similar[0].result]
    ranked = candidates
    if rerank_template is not None and candidates:
        rmodel = rerank_model(model, rerank_template)
        hub.embed.put(ref, _template(rerank_template)(text), rmodel)  # no-op when stored
        q = hub.embed.get(ref, rmodel)
        assert q is not None
        vecs = {r: hub.embed.get(r, rmodel) for r, _ in candidates}
        missing = [r for r, v in vecs.items() if v is None]
        if missing and texts is not None:
            source = _text_sources.get(texts)
            if source is None:
                raise PermanentError(f"unknown text source {texts!r}")
            found = {r: t for r, t in dict(source(missing)).items() if r in vecs}
            fn = _template(rerank_template)
            if found:
                hub.embed.put_many({r: fn(t) for r, t in found.items()}, rmodel)
                vecs.update({r: hub.embed.get(r, rmodel) for r in found})
        scored = []
        for r, s in candidates:
            v = vecs.get(r)
            if v is None:
                log.warning(
                    "rerank of %r: %r has no %s vector; kept its first score", ref, r, rmodel
                )
            scored.append((r, s if v is None else float(np.dot(q, v))))
        ranked = sorted(scored, key=lambda rs: -rs[1])
    out = [[r, round(s, 6)] for r, s in ranked[:k]]
    ctx.spawn(publish, {"ref": ref, "related": out}, after=[ctx.job.id])
    return out


TASKS = (
    TaskDef(START_TASK, _start, queue=EMBED_QUEUE, max_attempts=1),
    TaskDef(EMBED_TASK, _embed, queue=EMBED_QUEUE, priority=BACKLOG_PRIORITY),
    TaskDef(SIMILAR_TASK, _similar, queue=EMBED_QUEUE, priority=MEETING_PRIORITY),
    TaskDef(RERANK_TASK, _rerank, queue=EMBED_QUEUE, priority=MEETING_PRIORITY),
)


# --- producing -----------------------------------------------------------------------------


def _publish_task(jobs: Jobs, publish: str | Callable[..., Any]) -> str:
    """The task name of ``publish``; a function is registered as a task on first use."""
    if isinstance(publish, str):
        if publish not in jobs.tasks:
            raise InvalidInput(f"publish must be a registered task name; {publish!r} is not one")
        return publish
    if not callable(publish):
        raise InvalidInput(f"publish must be a task name or a function, got {publish!r}")
    name = f"{publish.__module__}.{publish.__qualname__}"
    known = jobs.tasks.get(name)
    if known is None or known.fn is not publish:
        jobs.register(TaskDef(name, publish, queue=EMBED_QUEUE, priority=MEETING_PRIORITY))
    return name


def related(
    jobs: Jobs,
    group: str,
    items: Mapping[str, str],
    publish: str | Callable[..., Any],
    k: int = 5,
    rerank_template: str | None = None,
    model: str | None = None,
    priority: int = MEETING_PRIORITY,
    candidates: int | None = None,
    texts: str | None = None,
) -> str:
    """Submit the related-items flow of ``group`` (its ``items``: ``{ref: text}``) and
    return its flow id. ``publish``: a registered task name, or a function (registered as
    a task on the ``embed`` queue, named by its module and qualified name), called per item
    with ``ref`` and ``related`` (``[[ref, score], ...]``, the best ``k``, none of the group).
    ``candidates``: how many neighbours ``similar`` hands to ``rerank`` (default
    :data:`CANDIDATES`, or ``3 * k`` if more)."""
    if not isinstance(group, str) or not group:
        raise InvalidInput(f"group must be a non-empty string, got {group!r}")
    if not isinstance(items, Mapping) or not items:
        raise InvalidInput("items must be a non-empty mapping of ref to text")
    for ref, text in items.items():
        if not isinstance(ref, str) or not ref:
            raise InvalidInput(f"a ref must be a non-empty string, got {ref!r}")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"the text of {ref!r} is empty; pass some words")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"k must be a positive integer, got {k!r}")
    n = max(CANDIDATES, 3 * k) if candidates is None else candidates
    if isinstance(n, bool) or not isinstance(n, int) or n < k:
        raise InvalidInput(f"candidates must be an integer >= k ({k}), got {candidates!r}")
    publish = _publish_task(jobs, publish)
    if texts is not None and texts not in _text_sources:
        raise InvalidInput(f"unknown text source {texts!r}; register it first")
    model = get_embedder(model).name
    rerank_model(model, rerank_template)  # validates the template
    refs = list(items)
    flow = jobs.flow(f"related-{group}", priority=priority)
    start = flow.add(START_TASK, {"group": group, "n": len(refs)})
    embeds = {
        r: flow.add(
            EMBED_TASK,
            {"refs_texts": {r: items[r]}, "model": model, "rerank_template": rerank_template},
            after=[start],
        )
        for r in refs
    }
    for r in refs:
        sim = flow.add(
            SIMILAR_TASK,
            {
                "ref": r,
                "group": group,
                "exclude": refs,
                "n": n,
                "model": model,
                "rerank_template": rerank_template,
            },
            after=[embeds[r]],
        )
        for other in refs:
            if other != r:
                flow.link(embeds[other], sim, "ignore")
        flow.add(
            RERANK_TASK,
            {
                "ref": r,
                "text": items[r],
                "k": k,
                "model": model,
                "publish": publish,
                "rerank_template": rerank_template,
                "texts": texts,
            },
            after=[sim],
        )
    flow.submit()
    assert flow.id is not None
    return flow.id


def embed_backlog(
    jobs: Jobs,
    items: Mapping[str, str],
    model: str | None = None,
    rerank_template: str | None = None,
    priority: int = BACKLOG_PRIORITY,
    batch: int = BATCH_SIZE,
) -> list[int]:
    """Enqueue ``embed`` jobs for a backlog (``{ref: text}``), ``batch`` texts each; returns
    their job ids. Unchanged texts are not embedded again."""
    model = get_embedder(model).name
    rerank_model(model, rerank_template)
    refs = list(items)
    args = [
        {
            "refs_texts": {r: items[r] for r in refs[i : i + batch]},
            "model": model,
            "rerank_template": rerank_template,
        }
        for i in range(0, len(refs), batch)
    ]
    return [j.id for j in jobs.enqueue_many(EMBED_TASK, args, priority=priority)]
