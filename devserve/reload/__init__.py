"""Live reload (``--reload``): watch files, tell browsers, put the script into pages.

``watcher`` (the only watchfiles import) reports batches of changes; ``hub``
fans each one out to the browsers' event streams (``sse``); ``handler`` serves
the stream and the worker script under ``/__devserve__/`` and injects the
client script (``inject``, pure) into HTML pages. ``serving`` wires them up.
"""
