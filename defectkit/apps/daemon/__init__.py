"""``inspect serve``: the line-side inference daemon.

A hot folder and an HTTP API in; a verdict JSON, one database row per inspection,
files moved to ``done/`` or ``rejected/`` and optional overlays out. Torch-free: it runs
exported bundles through :mod:`defectkit.exporters.runtime` with numpy and Pillow only.

Modules, one job each: :mod:`.config` (flags -> dataclass), :mod:`.store` (SQLite /
PostgreSQL), :mod:`.hotfolder` (stable-file detection and moves), :mod:`.jobs` (bounded
queue with back-pressure), :mod:`.worker` (decode, inspect, commit, finish),
:mod:`.bundles` (current bundle and hot reload), :mod:`.overlay`, :mod:`.metrics`,
:mod:`.api` (FastAPI app), :mod:`.service` (wiring, signals); the ``serve`` flags are
:mod:`defectkit.cli.serve`.
"""
