"""Continuous learning (CML): time-series samples, scratch / fine-tune training planned
from them, models with user-defined statuses, and inference stored as a time series."""
