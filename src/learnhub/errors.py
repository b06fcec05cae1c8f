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
