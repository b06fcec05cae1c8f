"""Embeddings: embedders registered by name, ``hub.embed`` (persisted vectors, search, the
related-items flow)."""

from learnhub.embed import ann
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
from learnhub.embed.related import (
    AD_HOC_PRIORITY,
    BACKLOG_PRIORITY,
    MEETING_PRIORITY,
    register_template,
    register_text_source,
)
from learnhub.embed.store import Embeddings

__all__ = [
    "AD_HOC_PRIORITY",
    "BACKLOG_PRIORITY",
    "MEETING_PRIORITY",
    "MAX_CHARS",
    "Embedder",
    "Embeddings",
    "ann",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "available",
    "default_name",
    "get_embedder",
    "register",
    "register_template",
    "register_text_source",
]
