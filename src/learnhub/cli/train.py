"""learnhub train ... (stub: helper F implements it)."""
