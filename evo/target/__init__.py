"""The target: the folder evo improves (its `target.toml`, its static rules) and the protocol by
which its fixed part reports the metric. The lowest layer: it imports nothing of evo's but the
errors and the statuses, so that a target's fixed code can import `evo.target.protocol` cheaply."""

from evo.target.spec import Measure, Rules, Target, load_target

__all__ = ["Measure", "Rules", "Target", "load_target"]
