"""The example domain: background tasks.

Flask serves the HTML pages (:mod:`.views`) and the JSON API (:mod:`.api`);
tasks run on the shared executor (:mod:`.runner`) and publish their progress
(:mod:`.events`), which the native WebSocket pushes to browsers.
"""
