"""The live-migration policy's schedule, as numbers: the data a migration
moves, the downtime steps and the completion timeout.

Pure and free of libvirt, so that both the agent's monitor
(agent.host.migration.policy, which enforces it) and the controller's
prediction (agent.controller.prediction, which models it) use the same
figures.
"""
from agent.common.errors import InvalidInput

GiB = 1024 ** 3
# Like Nova: guest RAM counts as at least 2 GiB, so that small guests get
# usable step delays and timeouts.
MIN_MEMORY_GB = 2


def data_gb(memory_bytes, disk_bytes=0):
    """GiB a migration moves, for scaling delays and timeouts: RAM (at
    least MIN_MEMORY_GB) plus the disk data a block migration copies."""
    return max(memory_bytes / GiB, MIN_MEMORY_GB) + disk_bytes / GiB


def downtime_steps(max_ms, steps, delay_s, data_gb, base_ms=None):
    """``[(at_seconds, downtime_ms), ...]``: ``steps + 1`` steps from
    ``base_ms`` (default ``max_ms / steps``, as Nova) at 0 s to ``max_ms``,
    ``delay_s * data_gb`` seconds apart."""
    if max_ms <= 0 or steps < 1 or delay_s < 0 or data_gb <= 0:
        raise InvalidInput("downtime steps need max_ms > 0, steps >= 1, "
                           "delay_s >= 0 and data_gb > 0")
    base = max_ms / steps if base_ms is None else min(base_ms, max_ms)
    delay = delay_s * data_gb
    offset = (max_ms - base) / steps
    return [(round(delay * i, 3), int(round(base + offset * i)))
            for i in range(steps + 1)]


def completion_timeout(seconds_per_gb, data_gb):
    """Seconds a migration of ``data_gb`` may take; 0 means no limit."""
    return seconds_per_gb * data_gb if seconds_per_gb > 0 else 0
