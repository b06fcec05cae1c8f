"""Learning data: immutable, versioned artifacts (named files + attributes + a quality metric)."""

from learnhub.learning.artifacts import Artifact, ArtifactVersion, Learning

__all__ = ["Artifact", "ArtifactVersion", "Learning"]
