"""A run: the engine loop, its Ray actors (islands and evaluators), the run state that is the
checkpoint, the run folder and the live progress line."""
