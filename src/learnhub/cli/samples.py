"""learnhub samples ... (stub: helper E implements it)."""
