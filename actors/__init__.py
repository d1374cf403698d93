"""Session actors: the per-session state machine and the Ray actor that hosts it."""
