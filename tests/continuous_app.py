"""The app that the continuous tests' worker processes load: ``--app continuous_app:hub``.

The store comes from LEARNHUB_DB; tests put this directory on PYTHONPATH. The trainer fits a
mean of column ``y``. It first writes ``started-<task>-<attempt>`` under $CONT_APP_DIR; on
the attempts listed in $CONT_APP_HANG_ATTEMPTS it then hangs (until the test kills it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.compute as pc

import learnhub
from learnhub.continuous.training import TrainContext

MIN_START = 10
MIN_UPDATE = 5

hub = learnhub.open()


@hub.trainer(
    min_start_count=MIN_START, min_update_count=MIN_UPDATE, limit_time="10m", plan_every="1h"
)
def train(ctx: TrainContext) -> None:
    folder = Path(os.environ["CONT_APP_DIR"])
    (folder / f"started-{ctx.task_id}-{ctx.job.attempts}").write_text(str(os.getpid()))
    hang = os.environ.get("CONT_APP_HANG_ATTEMPTS", "").split(",")
    while str(ctx.job.attempts) in hang:
        time.sleep(0.05)  # killed here by the test
    table = ctx.train()
    mean = pc.mean(table.column("y")).as_py()
    ctx.save_model({"mean": mean}, metrics={"val_loss": 0.0, "rows": table.num_rows})
