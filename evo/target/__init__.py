"""The target: the folder evo improves (its `target.toml`, its static rules) and the protocol by
which its fixed part reports the metric. The bottom layer: it imports nothing else of evo's but
its errors, so that a target's fixed code can import `evo.target.protocol` cheaply."""

from evo.target.spec import Rules, Target, load_target

__all__ = ["Rules", "Target", "load_target"]
