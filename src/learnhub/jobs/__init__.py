"""Jobs: a persistent priority queue with workflows, and the workers that run it."""

from learnhub.errors import WaitTimeout
from learnhub.jobs.model import Job, JobTimeout, PermanentError, Retry
from learnhub.jobs.queue import Flow, FlowNode, Jobs
from learnhub.jobs.worker import JobContext, Worker

__all__ = [
    "Flow",
    "FlowNode",
    "Job",
    "JobContext",
    "JobTimeout",
    "Jobs",
    "PermanentError",
    "Retry",
    "WaitTimeout",
    "Worker",
]
