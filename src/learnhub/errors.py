"""Every error learnhub raises on purpose. Messages say what was wrong and what to do."""


class LearnhubError(Exception):
    """Base of all learnhub errors."""


class ConfigError(LearnhubError):
    """A configuration file, environment variable or flag is invalid."""


class InvalidInput(LearnhubError, ValueError):
    """An argument was rejected; nothing was written."""


class StoreError(LearnhubError):
    """The store cannot be opened or used."""


class SchemaTooNew(StoreError):
    """The database was written by a newer learnhub."""


class ServerError(LearnhubError):
    """The RESP server cannot start or a request to it failed."""


class AlreadyRunning(ServerError):
    """Another hub is already serving on the requested socket."""


class WaitTimeout(LearnhubError, TimeoutError):
    """``hub.jobs.wait`` gave up before the job finished."""


class AIError(InvalidInput):
    """A tensor, model, script or DAG request failed; the text is RedisAI's, without "ERR "."""


class BackendUnavailable(AIError):
    """The model or script needs a backend (onnxruntime, torch) this hub does not have."""


class AITimeout(AIError):
    """A model, script or DAG run went past its TIMEOUT; RedisAI clients see ``TIMEDOUT``."""


class WrongType(AIError):
    """The key holds another kind of value (a model where a tensor was expected ...)."""

    def __init__(self, message: str = "Operation against a key holding the wrong kind of value"):
        super().__init__(message)
