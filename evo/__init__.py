"""evo: evolutionary, population-based search that improves code against a measured metric."""

__version__ = "0.1.0"
