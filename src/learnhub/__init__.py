"""learnhub keeps, grows and shares what machine-learning programs learn."""

from learnhub.__about__ import __version__
from learnhub.client import Client, connect
from learnhub.config import Config
from learnhub.errors import (
    AlreadyRunning,
    ConfigError,
    InvalidInput,
    LearnhubError,
    SchemaTooNew,
    ServerError,
    StoreError,
)
from learnhub.hub import Hub, open
from learnhub.jobs import Job, JobContext, PermanentError, Retry, WaitTimeout
from learnhub.learning import Artifact, ArtifactVersion

__all__ = [
    "AlreadyRunning",
    "Artifact",
    "ArtifactVersion",
    "Client",
    "Config",
    "ConfigError",
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
    "__version__",
    "connect",
    "open",
]
