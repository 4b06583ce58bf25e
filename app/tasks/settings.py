"""The tasks feature's own settings, read from the environment like :mod:`config`'s."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config import ConfigError, Settings, load_feature_settings

REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")
"""What ``REDIS_URL`` may start with (redis-py's ``Redis.from_url``)."""


class TaskSettings(BaseSettings):
    """Variables of the tasks feature.

    :ivar task_threads: background tasks allowed to run at once on the shared
        executor (threads); default ``max(1, THREADS // 4)``; below ``THREADS``,
        so that requests always keep at least one thread.
    :ivar task_heartbeat_interval: seconds between lease refreshes
        (:data:`app.tasks.runner.HEARTBEAT_INTERVAL` by default); every process
        also sweeps this often for tasks of processes that died (``serve
        --processes``, several hosts), whose lease is stale after 3 intervals.
    :ivar task_backend: ``inprocess`` (tasks run on the server's executor,
        events stay in the process) or ``queue`` (tasks go to a Dramatiq queue
        on Redis, run by ``python manage.py worker``; events go through Redis
        pub/sub to every web process). See docs/tasks.md.
    :ivar redis_url: the Redis of the queue backend (``redis://``,
        ``rediss://`` or ``unix://``).
    :ivar task_queue_prefix: the prefix of the feature's Redis keys and
        channels (e.g. ``tasks:events``), so that services can share a Redis.
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
    task_backend: Literal["inprocess", "queue"] = Field(
        "inprocess",
        description="inprocess: tasks run on the server's executor; "
        "queue: on a Dramatiq queue on Redis (REDIS_URL), events through Redis pub/sub.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="The Redis of TASK_BACKEND=queue: redis://, rediss:// or unix://.",
    )
    task_queue_prefix: str = Field(
        "tasks",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Prefix of the feature's Redis keys and channels, so services can share one.",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str) -> str:
        if not value.startswith(REDIS_URL_SCHEMES):
            raise ValueError("must start with " + ", ".join(REDIS_URL_SCHEMES))
        return value


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
