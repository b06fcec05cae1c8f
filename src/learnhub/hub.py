"""The Hub: opens the store and wires every part onto it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from learnhub import config as config_module
from learnhub.ai.engine import AI, DAG_TASK
from learnhub.config import Config
from learnhub.continuous.models import Models
from learnhub.continuous.samples import Samples
from learnhub.continuous.training import Continuous
from learnhub.embed import Embeddings
from learnhub.jobs.queue import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    Jobs,
    TaskDef,
)
from learnhub.jobs.worker import JobContext, Worker, run_worker
from learnhub.learning import Learning
from learnhub.sharing import Examples, Sharing
from learnhub.store import Store, open_store

if TYPE_CHECKING:
    from learnhub.peers import PeersConfig, PeerService

F = TypeVar("F", bound=Callable[..., Any])

PRUNE_TASK = "learnhub.prune"
# The queue of learnhub's own jobs, which every hub can run without an app.
BUILTIN_QUEUE = "learnhub"


class Hub:
    """One hub per machine: ``hub.learning``, ``hub.jobs``, ``hub.ai`` and, as they land, the
    other parts."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.node_id = _node_id(store)
        self.learning = Learning(store, self.node_id, config.learning)
        self.jobs = Jobs(store, poll_interval=config.jobs.poll_seconds)
        self.jobs.register(TaskDef(PRUNE_TASK, _prune, queue=BUILTIN_QUEUE, max_attempts=1))
        self.ai = AI(store, self.jobs, BUILTIN_QUEUE)
        self.jobs.register(TaskDef(DAG_TASK, self.ai.run_job, queue=BUILTIN_QUEUE, max_attempts=1))
        self.samples = Samples(store)
        self.models = Models(store, self.learning)
        self.continuous = Continuous(self)
        self.embed = Embeddings(store, self.jobs, config.embed.approximate_above)
        sharing = config.sharing
        self.examples = Examples(
            store, self.jobs, self.embed, sharing.model, backup=sharing.backup is not None
        )
        self.sharing = Sharing(store, self.jobs, self.embed, self.learning, self.examples, sharing)
        self.peers: PeerService | None = None  # once start_peers() ran

    def task(
        self,
        name: str | None = None,
        *,
        queue: str = DEFAULT_QUEUE,
        priority: int = DEFAULT_PRIORITY,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        timeout: float | None = None,
        retry_delay: float = 1.0,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a task: ``@hub.task("embed", queue="embed", timeout=30)`` on a function
        ``fn(ctx, **args)``. The options are the defaults of the jobs enqueued for it."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.jobs.register(
                TaskDef(
                    name or fn.__name__, fn, queue, priority, max_attempts, timeout, retry_delay
                )
            )
            return fn

        return register

    def trainer(
        self,
        min_start_count: int = 1000,
        min_update_count: int = 200,
        limit_time: float | str | timedelta = "30m",
        working_status: str | Iterable[str] = ("training",),
        plan_every: float | str | timedelta = "60s",
    ) -> Callable[[F], F]:
        """Register the training function ``fn(ctx)`` (one per hub: another replaces it); see
        ``Continuous.trainer``."""
        return self.continuous.trainer(
            min_start_count, min_update_count, limit_time, working_status, plan_every
        )

    def infer(
        self,
        batch: str,
        rows: Any,
        fn: Callable[[Any, Any], Any],
        available_status: str | Iterable[str] = ("ready",),
    ) -> pa.Table:
        """Run ``fn(rows, model)`` with the newest model of ``batch`` in ``available_status``
        and store its outputs: see ``Continuous.infer``."""
        return self.continuous.infer(batch, rows, fn, available_status)

    def worker(
        self,
        queues: Iterable[str] | None = None,
        concurrency: int = 4,
        burst: bool = False,
        prefetch: int = 0,
    ) -> Worker:
        """A worker for this hub's jobs (``worker.run()`` in a thread of your own); also
        keeps the built-in schedules, such as pruning succeeded jobs."""
        self.jobs.every(PRUNE_TASK, seconds=3600, args={"days": self.config.jobs.retention_days})
        self.continuous.schedule()  # the training planner, when a trainer is registered
        self.sharing.schedule()  # load shared examples now, then poll; when configured
        return Worker(self, queues, concurrency, burst, self.config.jobs.lease_seconds, prefetch)

    def run_worker(
        self,
        queues: Iterable[str] | None = None,
        concurrency: int = 4,
        burst: bool = False,
        prefetch: int = 0,
    ) -> None:
        """Run jobs in this thread until Ctrl-C/SIGTERM (or, with ``burst``, until none is
        left). ``prefetch``: jobs claimed ahead of free threads (faster for short jobs,
        priority order then holds only beyond them)."""
        run_worker(self.worker(queues, concurrency, burst, prefetch))

    def start_peers(self, config: PeersConfig | None = None) -> PeerService:
        """Start the peer link ([peers], or ``config``): lookup misses ask peers, new
        versions are offered to the peers that want them."""
        from learnhub.peers import PeerService, parse_peers_config

        if self.peers is None:
            service = PeerService(self, config or parse_peers_config(self.config.peers)).start()
            self.learning.elsewhere.add(service.source)
            self.peers = service
        return self.peers

    def close(self) -> None:
        if self.peers is not None:
            self.learning.elsewhere.remove(self.peers.source)
            self.peers.stop()
            self.peers = None
        self.learning.close()
        self.embed.close()
        self.ai.close()
        self.store.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Hub {self.node_id} on {self.store!r}>"


def open(url: str | None = None, *, config: Config | None = None) -> Hub:  # noqa: A001
    """Open the hub on ``url`` (default: the configured store, else SQLite in the data dir)."""
    config = config or config_module.load()
    return Hub(open_store(url or config.store_url), config)


def _prune(ctx: JobContext, days: float) -> int:
    return ctx.hub.jobs.prune(days)


def _node_id(store: Store) -> str:
    """This database's node id: made once, kept for good, shared by every process on it."""
    with store.transaction() as tx:
        tx.execute("init_meta", name="node_id", value=uuid.uuid4().hex[:16])
        row = tx.one("get_meta", name="node_id")
    assert row is not None
    return row["value"]
