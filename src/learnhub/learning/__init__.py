"""Learning data: immutable, versioned artifacts (named files + attributes + a quality metric),
combination policies for concurrent stores, and asking elsewhere on a lookup miss."""

from learnhub.learning.artifacts import Artifact, ArtifactVersion, Combination, Learning, Stored
from learnhub.learning.policies import POLICIES, LearningConfig, parse_learning_config

__all__ = [
    "POLICIES",
    "Artifact",
    "ArtifactVersion",
    "Combination",
    "Learning",
    "LearningConfig",
    "Stored",
    "parse_learning_config",
]
