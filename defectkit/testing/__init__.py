"""Test doubles and helpers shared by the test suite and the benchmarks.

:mod:`.daemon` (a fake bundle and test images), :mod:`.processes` (daemon subprocesses,
a throw-away PostgreSQL), :mod:`.labelling` (synthetic projects for the labelling app).
In the package, not under ``tests/``, so benchmarks and daemon subprocesses import them
like any other module. Nothing is imported here.
"""
