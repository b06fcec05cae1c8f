"""Tensors, models, scripts and DAGs, compatible with RedisAI 1.2.7: ``hub.ai``."""

from learnhub.ai.engine import AI, DagBuilder

__all__ = ["AI", "DagBuilder"]
