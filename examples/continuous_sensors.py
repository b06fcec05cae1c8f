"""Continuous learning on a sensor stream: train from scratch, then fine-tune as data arrives.

Each device reports a noisy daily cycle y(t) (t in hours): an offset plus harmonics of a
24-hour period with amplitudes 1/k, so the finer detail takes more data to learn. Samples
arrive in rounds; after each round the planner decides which devices need training and a
worker trains them. The model is least squares on sin/cos features, kept as its sufficient
statistics (X'X, X'y): a fine-tune adds the new samples' statistics to the base model's and
solves again, with more harmonics as more data supports them. The validation error on each
round's new validation samples goes down version after version.

    python examples/continuous_sensors.py        # on a throwaway SQLite hub

``run(hub, console)`` runs it on any hub (``learnhub demo`` does).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import learnhub
from learnhub.continuous.training import QUEUES, TrainContext
from learnhub.hub import Hub
from learnhub.jobs import Worker

DEVICES = ("sensor-a", "sensor-b", "sensor-c")
PERIOD_H = 24.0
TRUE_HARMONICS = 24  # the signal's detail
MAX_HARMONICS = 24  # what the model may use
ROWS_PER_HARMONIC = 100  # training rows needed per harmonic the model fits
NOISE = 0.1
ROUNDS = 6
ROWS_PER_ROUND = 500  # per device
MIN_START, MIN_UPDATE = 800, 400


@dataclass
class Device:
    """One sensor's true signal, and its stream of readings."""

    name: str
    offset: float
    phases: np.ndarray
    rng: np.random.Generator
    t: float = 0.0

    @classmethod
    def make(cls, name: str, seed: int) -> Device:
        rng = np.random.default_rng(seed)
        return cls(name, rng.uniform(-2, 2), rng.uniform(0, 2 * np.pi, TRUE_HARMONICS), rng)

    def truth(self, t: np.ndarray) -> np.ndarray:
        k = np.arange(1, TRUE_HARMONICS + 1)
        w = 2 * np.pi * np.outer(t, k) / PERIOD_H
        return self.offset + (np.sin(w + self.phases) / k).sum(axis=1)

    def readings(self, n: int) -> dict[str, np.ndarray]:
        """The next ``n`` readings, at random moments of the next 48 hours."""
        t = np.sort(self.t + self.rng.uniform(0, 48, n))
        self.t += 48
        return {"t": t, "y": self.truth(t) + self.rng.normal(0, NOISE, n)}


def features(t: np.ndarray, harmonics: int = MAX_HARMONICS) -> np.ndarray:
    """[1, sin w, cos w, sin 2w, cos 2w, ...]: the first 1 + 2k columns are k harmonics."""
    w = 2 * np.pi * np.asarray(t)[:, None] * np.arange(1, harmonics + 1) / PERIOD_H
    columns = np.empty((len(t), 1 + 2 * harmonics))
    columns[:, 0] = 1.0
    columns[:, 1::2], columns[:, 2::2] = np.sin(w), np.cos(w)
    return columns


def predict(model: dict[str, Any], t: np.ndarray) -> np.ndarray:
    return features(t, model["harmonics"]) @ model["coef"]


def train(ctx: TrainContext) -> None:
    """Fit (scratch) or refit with the new samples added (fine-tune); validate on the new
    validation samples."""
    data = ctx.train()
    x, y = features(data.column("t").to_numpy()), data.column("y").to_numpy()
    xtx, xty, n = x.T @ x, x.T @ y, len(y)
    if ctx.base_model is not None:  # fine-tune: what the base model learned, plus the new
        base = ctx.base_model.load()
        xtx, xty, n = xtx + base["xtx"], xty + base["xty"], n + base["n"]
    harmonics = min(MAX_HARMONICS, n // ROWS_PER_HARMONIC)
    m = 1 + 2 * harmonics
    coef = np.linalg.solve(xtx[:m, :m] + 1e-9 * np.eye(m), xty[:m])
    model = {"xtx": xtx, "xty": xty, "n": n, "harmonics": harmonics, "coef": coef}
    val = ctx.validation()
    residual = predict(model, val.column("t").to_numpy()) - val.column("y").to_numpy()
    rmse = float(np.sqrt(np.mean(residual**2)))
    ctx.save_model(model, metrics={"val_loss": rmse, "rows": n, "harmonics": harmonics})


def run(hub: Hub, console: Console, rounds: int = ROUNDS) -> dict[str, list[float]]:
    """Stream ``rounds`` of readings into ``hub``, planning and training after each; return
    each device's validation errors, one per model version."""
    hub.trainer(
        min_start_count=MIN_START, min_update_count=MIN_UPDATE, limit_time="5m", plan_every="1m"
    )(train)
    devices = [Device.make(name, seed) for seed, name in enumerate(DEVICES)]
    for device in devices:  # on a hub that ran this before, the stream goes on
        device.t = 48.0 * (hub.samples.count(device.name) // ROWS_PER_ROUND)
    errors: dict[str, list[float]] = {d.name: [] for d in devices}
    table = Table("round", "device", "model", "mode", "train rows", "harmonics", "val RMSE")
    for r in range(1, rounds + 1):
        for i, device in enumerate(devices):
            hub.samples.add(device.name, device.readings(ROWS_PER_ROUND), seed=1000 * r + i)
        decisions = [d for d in hub.continuous.plan() if d.action in QUEUES]
        # A burst worker of the training queues (hub.worker() would also keep the planner's
        # schedule in the database, for workers that run all the time).
        Worker(hub, QUEUES.values(), burst=True).run()
        for d in decisions:
            task = hub.continuous.task(d.task_id)  # type: ignore[arg-type]
            model = hub.models.get(task.model_id) if task and task.model_id else None
            if model is None:
                console.print(f"[red]{d.batch}: task {d.task_id} {task and task.status}[/red]")
                continue
            errors[d.batch].append(model.metrics["val_loss"])
            table.add_row(
                str(r),
                d.batch,
                f"v{model.id}",
                d.action,
                str(model.metrics["rows"]),
                str(model.metrics["harmonics"]),
                f"{model.metrics['val_loss']:.3f}",
            )
        waiting = sorted({d.batch for d in hub.continuous.plan() if d.action == "wait"})
        if not decisions:
            console.print(f"round {r}: not enough data yet ({', '.join(waiting)})")
    console.print(table)

    # Inference with the newest ready model, its outputs stored as a time series.
    device = devices[0]
    t = device.t + np.array([1.0, 7.5, 13.0])
    out = hub.infer(device.name, t, lambda rows, model: predict(model, rows))
    console.print(f"inference on {device.name} with model v{out.column('model_version')[0]}:")
    for ti, p, y in zip(t, out.column("prediction").to_pylist(), device.truth(t), strict=True):
        console.print(f"  t = {ti:.1f} h: predicted {p:.2f}, true {y:.2f}")
    console.print(f"noise level {NOISE}: the best a model can do is a val RMSE near it")
    return errors


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        learnhub.open(f"sqlite:///{Path(tmp) / 'hub.db'}") as hub,
    ):
        run(hub, Console())


if __name__ == "__main__":
    main()
