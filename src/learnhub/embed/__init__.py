"""Embeddings: embedders registered by name (vector index and related items build on these)."""

from learnhub.embed.embedders import (
    MAX_CHARS,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    available,
    default_name,
    get_embedder,
    register,
)
from learnhub.embed.store import Embeddings

__all__ = [
    "MAX_CHARS",
    "Embedder",
    "Embeddings",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "available",
    "default_name",
    "get_embedder",
    "register",
]
