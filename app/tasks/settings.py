"""The tasks feature's own settings, read from the environment like :mod:`config`'s."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from config import ConfigError, Settings, load_feature_settings


class TaskSettings(BaseSettings):
    """Variables of the tasks feature (``TASK_THREADS``, ``TASK_HEARTBEAT_INTERVAL``).

    :ivar task_threads: background tasks allowed to run at once on the shared
        executor (threads); default ``max(1, THREADS // 4)``; below ``THREADS``,
        so that requests always keep at least one thread.
    :ivar task_heartbeat_interval: seconds between lease refreshes
        (:data:`app.tasks.runner.HEARTBEAT_INTERVAL` by default); every process
        also sweeps this often for tasks of processes that died (``serve
        --processes``, several hosts), whose lease is stale after 3 intervals.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    task_threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Background tasks allowed to run at once; default max(1, THREADS // 4).",
    )
    task_heartbeat_interval: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds between a process's lease refreshes of its running tasks; "
        "a task whose lease is 3 intervals old is recorded interrupted by another process.",
    )


def task_threads(settings: Settings, override: int | None = None) -> int:
    """Return how many tasks may run at once: ``TASK_THREADS``, checked against ``THREADS``.

    :param settings: the shared settings (``threads``).
    :param override: a value that wins over the environment (tests).
    :raises config.ConfigError: ``TASK_THREADS`` is invalid, or not below
        ``THREADS`` (also when the default would not be: ``THREADS=1``).
    """
    value = override or load_feature_settings(TaskSettings).task_threads
    if value is None:
        value = max(1, settings.threads // 4)
    if value >= settings.threads:
        raise ConfigError(
            f"TASK_THREADS: must be below THREADS={settings.threads}, so that requests "
            f"keep a thread (got {value})"
        )
    return value
