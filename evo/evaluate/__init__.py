"""Evaluation: one variant of a target run in a fresh, killable subprocess, and its result."""
