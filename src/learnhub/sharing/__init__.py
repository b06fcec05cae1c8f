"""Sharing: learned examples (``hub.examples``) loaded from many storage locations and backed
up to one (``hub.sharing``), over fsspec; learning-data artifacts by key pattern too."""

from learnhub.sharing.examples import Example, Examples
from learnhub.sharing.locations import Location, LocationError
from learnhub.sharing.sync import Sharing, SyncReport

__all__ = ["Example", "Examples", "Location", "LocationError", "Sharing", "SyncReport"]
