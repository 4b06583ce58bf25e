"""Tests of the example feature, tasks (``app/tasks/`` and ``tornado_handlers/tasks/``).

They go with the example: removing it deletes this folder too, and the rest of
``tests/`` passes without it. Helpers live in :mod:`tests.tasks.support`.
"""
