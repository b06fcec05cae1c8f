"""learnhub keeps, grows and shares what machine-learning programs learn."""

from learnhub.__about__ import __version__
from learnhub.ai import AI, DagBuilder
from learnhub.client import Client, connect
from learnhub.config import Config
from learnhub.errors import (
    AIError,
    AITimeout,
    AlreadyRunning,
    BackendUnavailable,
    ConfigError,
    InvalidInput,
    LearnhubError,
    SchemaTooNew,
    ServerError,
    StoreError,
    WrongType,
)
from learnhub.hub import Hub, open
from learnhub.jobs import Job, JobContext, PermanentError, Retry, WaitTimeout
from learnhub.learning import Artifact, ArtifactVersion

__all__ = [
    "AI",
    "AIError",
    "AITimeout",
    "AlreadyRunning",
    "Artifact",
    "ArtifactVersion",
    "BackendUnavailable",
    "Client",
    "Config",
    "ConfigError",
    "DagBuilder",
    "Hub",
    "InvalidInput",
    "Job",
    "JobContext",
    "LearnhubError",
    "PermanentError",
    "Retry",
    "SchemaTooNew",
    "ServerError",
    "StoreError",
    "WaitTimeout",
    "WrongType",
    "__version__",
    "connect",
    "open",
]
