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
