"""Step scoring."""
