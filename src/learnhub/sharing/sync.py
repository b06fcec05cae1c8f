"""``hub.sharing``: load examples from the source locations, back this hub's up to one, and
keep each location's health for ``learnhub sharing status``.

A poll lists every due source (concurrently, each under the timeout), compares each file's
path and stamp with what the store saw last time (``shared_files``), reads only the new or
changed files (concurrently), and drops the examples whose last file disappeared. The same
example id in several files is one example: the newest ``updated_ns`` wins; when the file it
came from vanishes, the next newest copy replaces it. A file that is not an example is
skipped and reported (it is read again only when it changes).

Nothing here stops the hub: a source that is unreachable, slow or refuses is recorded with
its error and retried after a backoff (doubling from the poll interval, at most 10 minutes);
the examples it gave before stay. Backups are jobs, retried by the queue until they succeed;
``sync`` also writes any backup still due (a crash between commit and job is impossible, but
a backup location changed in the config needs it).
"""

from __future__ import annotations

import concurrent.futures as cf
import fnmatch
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from learnhub.config import SharingConfig
from learnhub.embed import get_embedder
from learnhub.jobs.queue import MAX_BACKOFF_S, TaskDef
from learnhub.sharing import artifacts as artifact_files
from learnhub.sharing.examples import (
    BACKUP_TASK,
    REF_PREFIX,
    REMOVED,
    SUFFIX,
    Examples,
    Loaded,
    check_id,
    parse_file,
    to_file,
)
from learnhub.sharing.locations import Location, LocationError

if TYPE_CHECKING:
    from learnhub.embed import Embeddings
    from learnhub.jobs.queue import Jobs
    from learnhub.jobs.worker import JobContext
    from learnhub.learning import Learning
    from learnhub.store import Store

log = logging.getLogger("learnhub.sharing")

POLL_TASK = "learnhub.sharing.poll"
QUEUE = "learnhub"
SOURCE, BACKUP = "source", "backup"
EXAMPLE, ARTIFACT = "example", "artifact"
MAX_LOCATION_BACKOFF_S = 600.0
EMBED_BATCH = 1024  # texts per model call and per commit of their vectors
# A backup is retried until it succeeds: the attempts are bounded only so that a job that
# can never succeed (a location removed from the config) ends some day.
BACKUP_ATTEMPTS = 1_000_000


@dataclass(frozen=True)
class _BackupTask(TaskDef):
    """The backup task, whose retry delay caps at ``max_backoff`` (the queue's cap is 10 min;
    a short poll interval should not wait that long for a location to come back)."""

    max_backoff: float = MAX_BACKOFF_S

    def backoff(self, attempts: int) -> float:
        return min(super().backoff(attempts), self.max_backoff)


@dataclass
class SyncReport:
    """What one ``sync``/``poll`` did."""

    listed: int = 0  # files found in the sources polled
    read: int = 0  # files read (new or changed)
    loaded: int = 0  # examples (and artifacts) added or replaced in the store
    dropped: int = 0  # examples removed because their file vanished
    skipped: int = 0  # files that are not examples (reported in status)
    backed_up: int = 0  # examples and artifacts written to the backup
    errors: dict[str, str] = field(default_factory=dict)  # location → error this time
    polled: list[str] = field(default_factory=list)  # locations polled
    waiting: list[str] = field(default_factory=list)  # locations left for their backoff

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


Progress = Callable[[str, int, int], None]
_Candidate = tuple[Location, str, Loaded]


def _quiet(stage: str, done: int, total: int) -> None:
    pass


class Sharing:
    """``hub.sharing``: polling, backup, status."""

    def __init__(
        self,
        store: Store,
        jobs: Jobs,
        embed: Embeddings,
        learning: Learning,
        examples: Examples,
        config: SharingConfig,
    ) -> None:
        self._store = store
        self._jobs = jobs
        self._embed = embed
        self._learning = learning
        self.examples = examples
        self.config = config
        opts = config.options
        timeout = float(config.timeout)
        self.sources = [Location(url, opts, timeout) for url in config.sources]
        self.backup = Location(config.backup, opts, timeout) if config.backup else None
        self.by_name = {loc.name: loc for loc in self.sources}
        self._syncing = threading.Lock()
        backoff_cap = max(float(config.poll_interval), 1.0)
        jobs.register(
            _BackupTask(
                BACKUP_TASK,
                self._backup_job,
                queue=QUEUE,
                max_attempts=BACKUP_ATTEMPTS,
                retry_delay=min(1.0, backoff_cap),
                max_backoff=min(backoff_cap, MAX_BACKOFF_S),
            )
        )
        jobs.register(TaskDef(POLL_TASK, self._poll_job, queue=QUEUE, max_attempts=1))

    # --- scheduling --------------------------------------------------------------------------

    def schedule(self) -> None:
        """Poll at start (now) and every ``poll_interval``; called when a worker starts."""
        if not self.sources and not self.backup:
            return
        interval = float(self.config.poll_interval)
        self._jobs.every(POLL_TASK, seconds=interval)
        self._jobs.enqueue(POLL_TASK, dedupe_key="sharing-poll-at-start")

    def _poll_job(self, ctx: JobContext) -> dict[str, Any]:
        return self.sync(force=False).to_dict()

    def _backup_job(self, ctx: JobContext, id: str) -> str:  # noqa: A002 - the job's arg
        return self.backup_example(id)

    # --- the whole thing ---------------------------------------------------------------------

    def sync(self, force: bool = True, progress: Progress | None = None) -> SyncReport:
        """Back up what is due, then poll the sources. ``force``: also the locations that are
        waiting out a backoff (``learnhub sharing sync``); the scheduled poll passes False."""
        report = SyncReport()
        progress = progress or _quiet
        # One sync at a time in this process: a scheduled poll that finds one running (a
        # slow location) skips its turn rather than piling up behind it.
        if not self._syncing.acquire(blocking=force):
            report.waiting.append("a sync already running")
            return report
        try:
            self.push(report, force, progress)
            self.poll(report, force, progress)
        finally:
            self._syncing.release()
        return report

    # --- backup ------------------------------------------------------------------------------

    def backup_example(self, example_id: str) -> str:
        """Write example ``example_id`` to the backup location (or remove its file if it was
        removed here); raises LocationError (the job is retried) if the location fails."""
        check_id(example_id)
        loc = self.backup
        if loc is None:
            return "no backup location configured"
        model = self.examples.model
        with self._store.transaction(readonly=True) as tx:
            row = tx.one("example_get", id=example_id)
        name = example_id + SUFFIX
        try:
            if row is None or not row["local"]:
                gone = loc.delete(name)
                self._success(loc, BACKUP)
                return f"removed {name}" if gone else f"{name} was not there"
            vector = self._embed.get(REF_PREFIX + example_id, model)
            path = loc.write(name, to_file(row, model if vector is not None else None, vector))
        except LocationError as exc:
            self._failure(loc, BACKUP, str(exc))
            raise
        with self._store.transaction() as tx:
            tx.execute("example_backed_up", id=example_id, updated_ns=row["updated_ns"])
        self._success(loc, BACKUP)
        return f"wrote {path}"

    def push(self, report: SyncReport, force: bool, progress: Progress) -> None:
        """Write every backup still due: examples not yet written, those whose file the
        backup location lost (a wiped bucket, a restored snapshot), matching artifacts."""
        loc = self.backup
        if loc is None:
            return
        if not force and self._waiting(loc):
            report.waiting.append(loc.name)
            return
        try:
            self._audit(loc)
        except LocationError as exc:
            report.errors[loc.name] = str(exc)
            self._failure(loc, BACKUP, str(exc))
            return
        with self._store.transaction(readonly=True) as tx:
            due = [r["id"] for r in tx.all("examples_backup_due")]
        todo_artifacts = self._artifacts_due()
        total = len(due) + len(todo_artifacts)
        done = 0
        progress("backup", 0, total)
        try:
            with cf.ThreadPoolExecutor(8) as pool:
                for _ in pool.map(self.backup_example, due):
                    done += 1
                    report.backed_up += 1
                    progress("backup", done, total)
            for key, version in todo_artifacts:
                self._backup_artifact(loc, key, version)
                done += 1
                report.backed_up += 1
                progress("backup", done, total)
            self._success(loc, BACKUP)
        except LocationError as exc:
            report.errors[loc.name] = str(exc)
            self._failure(loc, BACKUP, str(exc))

    def _audit(self, loc: Location) -> None:
        """One listing of the backup folder: an example marked backed up whose file is not
        there is due again (so nothing learned is lost when the location loses files)."""
        present = {p.rsplit("/", 1)[-1] for p in loc.list_folder(SUFFIX)}
        with self._store.transaction(readonly=True) as tx:
            done = [r["id"] for r in tx.all("examples_local_backed_up")]
        lost = [i for i in done if i + SUFFIX not in present]
        if lost:
            log.warning("sharing: %d backed-up examples missing from %s", len(lost), loc.name)
            with self._store.transaction() as tx:
                for example_id in lost:
                    tx.execute("example_backup_lost", id=example_id)

    # --- artifacts ---------------------------------------------------------------------------

    def _matches(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, p) for p in self.config.artifacts)

    def _artifacts_due(self) -> list[tuple[str, str]]:
        if not self.config.artifacts:
            return []
        with self._store.transaction(readonly=True) as tx:
            done = {(r["key"], r["version"]) for r in tx.all("shared_artifacts_all")}
        due = []
        for entry in self._learning.list():
            if not self._matches(entry["key"]):
                continue
            for v in self._learning.versions(entry["key"]):
                if (v.key, v.version) not in done:
                    due.append((v.key, v.version))
        return due

    def _backup_artifact(self, loc: Location, key: str, version: str) -> None:
        artifact = self._learning.get(key, version)
        if artifact is None:
            return
        name = artifact_files.file_name(key, version)
        try:
            path = loc.write(name, artifact_files.to_file(artifact))
        except LocationError as exc:
            self._failure(loc, BACKUP, str(exc))
            raise
        with self._store.transaction() as tx:
            tx.execute("shared_artifact_put", key=key, version=version, path=path)

    # --- polling -----------------------------------------------------------------------------

    def poll(
        self, report: SyncReport | None = None, force: bool = True, progress: Progress | None = None
    ) -> SyncReport:
        """One incremental poll of the sources (see the module's docstring)."""
        report = report or SyncReport()
        progress = progress or _quiet
        due = [loc for loc in self.sources if force or not self._waiting(loc)]
        report.waiting += [loc.name for loc in self.sources if loc not in due]
        report.polled += [loc.name for loc in due]
        if not due:
            return report
        progress("list", 0, len(due))
        listings: dict[Location, dict[str, str]] = {}
        failed: dict[Location, str] = {}
        with cf.ThreadPoolExecutor(min(8, len(due))) as pool:
            futures = {pool.submit(loc.list): loc for loc in due}
            for n, future in enumerate(cf.as_completed(futures), 1):
                loc = futures[future]
                try:
                    listings[loc] = future.result()
                except LocationError as exc:
                    failed[loc] = str(exc)
                progress("list", n, len(due))
        report.listed = sum(len(v) for v in listings.values())

        # What changed since the last poll, per location.
        to_read: dict[Location, list[str]] = {}
        old_items: dict[tuple[str, str], tuple[str, str]] = {}  # (loc, path) → (kind, id)
        vanished: list[tuple[Location, str, str, str]] = []  # loc, path, kind, id
        with self._store.transaction(readonly=True) as tx:
            seen_by = {loc: tx.all("shared_files_of", location=loc.name) for loc in listings}
        for loc, listing in listings.items():
            seen = {r["path"]: r for r in seen_by[loc]}
            to_read[loc] = [p for p, stamp in listing.items() if _stamp_of(seen.get(p)) != stamp]
            for path, r in seen.items():
                if r["item_id"] is not None:
                    old_items[(loc.name, path)] = (r["kind"], r["item_id"])
                if path not in listing:
                    vanished.append((loc, path, r["kind"], r["item_id"]))

        read_errors: dict[Location, list[str]] = {}
        contents = self._read(to_read, listings, read_errors, report, progress)
        loaded = self._apply(contents, report)
        # A changed file that no longer holds its old item: for that item, the file is gone.
        for (loc, path), (_stamp, item) in loaded.items():
            old = old_items.get((loc.name, path))
            if old is not None and old != item:
                vanished.append((loc, path, old[0], old[1]))
        self._vanish(vanished, listings, read_errors, report, progress)

        for loc in due:
            if loc in failed:
                report.errors[loc.name] = failed[loc]
                self._failure(loc, SOURCE, failed[loc])
            elif read_errors.get(loc):
                errs = read_errors[loc]
                more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
                report.errors[loc.name] = errs[0] + more
                self._failure(loc, SOURCE, errs[0] + more)
            else:
                self._success(loc, SOURCE)
        return report

    def _read(
        self,
        to_read: dict[Location, list[str]],
        listings: dict[Location, dict[str, str]],
        errors: dict[Location, list[str]],
        report: SyncReport,
        progress: Progress,
    ) -> dict[tuple[Location, str], tuple[str, bytes]]:
        """Read the files concurrently (locations in parallel, files within each in parallel);
        ``{(loc, path): (stamp, bytes)}``. A failed read is not recorded as seen: it is read
        again next time."""
        total = sum(len(v) for v in to_read.values())
        out: dict[tuple[Location, str], tuple[str, bytes]] = {}
        if not total:
            return out
        done = 0
        progress("read", 0, total)
        chunk = 1000  # progress steps, and bounded memory per step

        def read(loc: Location, paths: list[str]) -> dict[str, bytes | LocationError]:
            try:
                return loc.read_many(paths)
            except LocationError as exc:
                return dict.fromkeys(paths, exc)

        jobs = [
            (loc, paths[i : i + chunk])
            for loc, paths in to_read.items()
            for i in range(0, len(paths), chunk)
        ]
        with cf.ThreadPoolExecutor(min(4, len(jobs))) as pool:
            futures = {pool.submit(read, loc, paths): loc for loc, paths in jobs}
            for future in cf.as_completed(futures):
                loc = futures[future]
                got = future.result()
                for path, data in got.items():
                    if isinstance(data, LocationError):
                        errors.setdefault(loc, []).append(str(data))
                    else:
                        out[(loc, path)] = (listings[loc][path], data)
                done += len(got)
                report.read += len(got)
                progress("read", done, total)
        return out

    def _apply(
        self, contents: dict[tuple[Location, str], tuple[str, bytes]], report: SyncReport
    ) -> dict[tuple[Location, str], tuple[str, tuple[str, str] | None]]:
        """Parse what was read and store what wins; returns {(loc, path): (stamp, item)}."""
        files: list[dict[str, Any]] = []
        candidates: list[_Candidate] = []
        artifacts: list[tuple[Location, str, Any]] = []
        result: dict[tuple[Location, str], tuple[str, tuple[str, str] | None]] = {}
        for (loc, path), (stamp, data) in contents.items():
            entry = {"location": loc.name, "path": path, "stamp": stamp, "kind": EXAMPLE}
            try:
                if path.endswith(artifact_files.SUFFIX):
                    entry["kind"] = ARTIFACT
                    art = artifact_files.parse_file(data, path)
                    if not self._matches(art.key):
                        raise ValueError(
                            f"artifact key {art.key!r} matches no sharing.artifacts pattern"
                        )
                    entry.update(item_id=art.item_id, updated_ns=art.created_ns, error=None)
                    artifacts.append((loc, path, art))
                    result[(loc, path)] = (stamp, (ARTIFACT, art.item_id))
                else:
                    ex = parse_file(data, path)
                    entry.update(item_id=ex.row["id"], updated_ns=ex.row["updated_ns"], error=None)
                    candidates.append((loc, path, ex))
                    result[(loc, path)] = (stamp, (EXAMPLE, ex.row["id"]))
            except ValueError as exc:
                entry.update(item_id=None, updated_ns=None, error=f"{path}: {exc}")
                report.skipped += 1
                log.warning("sharing: skipped %s from %s: %s", path, loc.name, exc)
                result[(loc, path)] = (stamp, None)
            files.append(entry)
        winners = self._winners(candidates)
        rows = [w.row | {"src_location": loc.name, "src_path": p} for loc, p, w in winners]
        with self._store.transaction() as tx:
            for i in range(0, len(files), 5000):
                tx.execute("shared_files_put_many", rows=json.dumps(files[i : i + 5000]))
            for i in range(0, len(rows), 5000):
                tx.execute("examples_put_many", rows=json.dumps(rows[i : i + 5000]))
        self._embed_loaded([w for _, _, w in winners])
        report.loaded += len(winners)
        for loc, path, art in artifacts:
            try:
                if artifact_files.load(self._learning, self._store, art):
                    report.loaded += 1
            except ValueError as exc:
                report.skipped += 1
                with self._store.transaction() as tx:
                    tx.execute(
                        "shared_files_put_many",
                        rows=json.dumps(
                            [
                                {
                                    "location": loc.name,
                                    "path": path,
                                    "stamp": contents[(loc, path)][0],
                                    "kind": ARTIFACT,
                                    "item_id": None,
                                    "updated_ns": None,
                                    "error": f"{path}: {exc}",
                                }
                            ]
                        ),
                    )
        return result

    def _winners(
        self, candidates: list[tuple[Location, str, Loaded]]
    ) -> list[tuple[Location, str, Loaded]]:
        """The loaded copies that replace what the store holds: newest ``updated_ns`` wins;
        a newer version of the very file the example came from always does; examples learned
        here are never replaced by files (their own backup, read back, included)."""
        if not candidates:
            return []
        best: dict[str, tuple[Location, str, Loaded]] = {}
        for loc, path, ex in candidates:
            cur = best.get(ex.row["id"])
            if cur is None or ex.row["updated_ns"] > cur[2].row["updated_ns"]:
                best[ex.row["id"]] = (loc, path, ex)
        current: dict[str, dict[str, Any]] = {}
        ids = list(best)
        with self._store.transaction(readonly=True) as tx:
            for i in range(0, len(ids), 5000):
                for r in tx.all("example_versions", ids=json.dumps(ids[i : i + 5000])):
                    current[r["id"]] = r
            removed = {
                r["path"]: int(r["updated_ns"]) for r in tx.all("shared_files_of", location=REMOVED)
            }
        out = []
        for example_id, (loc, path, ex) in best.items():
            if ex.row["updated_ns"] <= removed.get(example_id, -1):
                continue  # removed here (hub.examples.rm): not this version, nor an older one
            cur = current.get(example_id)
            if cur is not None:
                if cur["local"]:
                    continue
                same_file = (cur["src_location"], cur["src_path"]) == (loc.name, path)
                orphan = cur["src_location"] is None
                if not (same_file or orphan or ex.row["updated_ns"] > cur["updated_ns"]):
                    continue
            out.append((loc, path, ex))
        return out

    def _embed_loaded(self, loaded: list[Loaded]) -> None:
        """Embed the loaded examples: the vectors files carry for the model in use as they
        are, the rest from their input, in batches."""
        if not loaded:
            return
        model = self.examples.model
        dim = get_embedder(model).dim
        vectors = {}
        texts = {}
        for ex in loaded:
            ref = REF_PREFIX + ex.row["id"]
            if ex.model == model and ex.vector is not None and ex.vector.shape == (dim,):
                vectors[ref] = ex.vector
            else:
                texts[ref] = ex.row["input"]
        refs = list(vectors)
        for i in range(0, len(refs), 5000):
            self._embed.put_vectors({r: vectors[r] for r in refs[i : i + 5000]}, model)
        refs = list(texts)
        for i in range(0, len(refs), EMBED_BATCH):
            self._embed.put_many({r: texts[r] for r in refs[i : i + EMBED_BATCH]}, model)

    def _vanish(
        self,
        vanished: list[tuple[Location, str, str, str | None]],
        listings: dict[Location, dict[str, str]],
        read_errors: dict[Location, list[str]],
        report: SyncReport,
        progress: Progress,
    ) -> None:
        """Files gone: forget them; an example whose last file is gone is dropped, one whose
        file is gone but has copies elsewhere is replaced by the newest copy."""
        if not vanished:
            return
        affected: set[str] = set()
        with self._store.transaction() as tx:
            for loc, path, kind, item in vanished:
                still = listings.get(loc, {}).get(path)
                if still is None:
                    tx.execute("shared_file_delete", location=loc.name, path=path)
                if kind == EXAMPLE and item is not None:
                    tx.execute("example_orphan", id=item, location=loc.name, path=path)
                    affected.add(item)
        replace: dict[Location, list[str]] = {}
        drop = []
        with self._store.transaction(readonly=True) as tx:
            for item in sorted(affected):
                row = tx.one("example_versions_one", id=item)
                if row is None or row["local"] or row["src_location"] is not None:
                    continue  # learned here, or still held by a file
                copies = tx.all("shared_file_copies", item_id=item, kind=EXAMPLE)
                usable = [c for c in copies if c["location"] in self.by_name]
                if not usable:
                    drop.append(item)
                else:
                    c = usable[0]
                    replace.setdefault(self.by_name[c["location"]], []).append(c["path"])
        model = self.examples.model
        for item in drop:
            with self._store.transaction() as tx:
                gone = tx.one("example_delete_shared", id=item)
            if gone is not None:
                self._embed.delete(REF_PREFIX + item, model)
                report.dropped += 1
        if replace:
            stamps = {}
            for loc, paths in replace.items():
                if loc not in listings:  # not listed this time: its stamps are unknown
                    with self._store.transaction(readonly=True) as tx:
                        seen = {
                            r["path"]: r["stamp"]
                            for r in tx.all("shared_files_of", location=loc.name)
                        }
                    stamps[loc] = {p: seen.get(p, "") for p in paths}
                else:
                    stamps[loc] = listings[loc]
            contents = self._read(replace, stamps, read_errors, report, progress)
            self._apply(contents, report)

    # --- location health ---------------------------------------------------------------------

    def _waiting(self, loc: Location) -> bool:
        with self._store.transaction(readonly=True) as tx:
            row = tx.one("sharing_status_get", location=loc.name)
        return row is not None and int(row["next_try_ns"]) > time.time_ns()

    def _success(self, loc: Location, role: str) -> None:
        with self._store.transaction() as tx:
            tx.execute("sharing_success", location=loc.name, role=role, now_ns=time.time_ns())

    def _failure(self, loc: Location, role: str, error: str) -> None:
        log.warning("sharing: %s %s: %s", role, loc.name, error)
        now = time.time_ns()
        base = max(float(self.config.poll_interval), 1.0)
        with self._store.transaction() as tx:
            row = tx.one("sharing_status_get", location=loc.name)
            failures = 0 if row is None else int(row["failures"])
            delay = min(base * 2**failures, max(base, MAX_LOCATION_BACKOFF_S))
            tx.execute(
                "sharing_failure",
                location=loc.name,
                role=role,
                now_ns=now,
                error=error,
                next_try_ns=now + int(delay * 1e9),
            )

    def status(self) -> list[dict[str, Any]]:
        """Each configured location: role, last success, last error, examples loaded (or, for
        the backup, examples backed up / learned here), files skipped and why."""
        with self._store.transaction(readonly=True) as tx:
            rows = {r["location"]: r for r in tx.all("sharing_status_all")}
            counts = {r["location"]: r for r in tx.all("shared_file_counts")}
            errors: dict[str, list[str]] = {}
            for r in tx.all("shared_file_errors"):
                errors.setdefault(r["location"], []).append(r["error"])
            mine = tx.one("example_counts") or {}
        out = []
        for role, loc in [(SOURCE, s) for s in self.sources] + (
            [(BACKUP, self.backup)] if self.backup else []
        ):
            r = rows.get(loc.name) or {}
            c = counts.get(loc.name) or {}
            entry: dict[str, Any] = {
                "location": loc.name,
                "role": role,
                "ok": bool(r.get("last_success_ns"))
                and int(r.get("last_success_ns") or 0) >= int(r.get("last_error_ns") or 0),
                "last_success": _iso(r.get("last_success_ns")),
                "last_error": r.get("last_error"),
                "last_error_at": _iso(r.get("last_error_ns")),
                "failures": int(r.get("failures") or 0),
                "next_try": _iso(r.get("next_try_ns")) if r.get("failures") else None,
            }
            if role == SOURCE:
                entry.update(
                    examples=int(c.get("items") or 0),
                    files=int(c.get("files") or 0),
                    skipped=int(c.get("skipped") or 0),
                    skipped_files=errors.get(loc.name, [])[:20],
                )
            else:
                entry.update(
                    backed_up=int(mine.get("backed_up") or 0), learned=int(mine.get("local") or 0)
                )
            out.append(entry)
        return out


def _stamp_of(row: dict[str, Any] | None) -> str | None:
    return None if row is None else row["stamp"]


def _iso(ns: Any) -> str | None:
    if not ns:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(ns) / 1e9, tz=UTC).isoformat(timespec="seconds")
