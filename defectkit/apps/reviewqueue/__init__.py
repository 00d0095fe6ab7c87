"""The review queue between the line and the lab: a bounded store of uncertain parts.

The daemon (:mod:`defectkit.apps.daemon`) writes it; the labelling app reads it, from
the SQLite file or through a daemon's ``GET /v1/review``. It lives in its own package,
importing neither app, so the two apps stay independent (import-linter checks that)
and both stay torch-free here. Modules: :mod:`.store` (the SQLite store, bounded by
count and bytes, oldest evicted and counted), :mod:`.pgstore` (the same per line, in a
PostgreSQL database several lines share), :mod:`.items` (the typed item),
:mod:`.client` (a daemon's review API over HTTP), :mod:`.sources` (open any, or several merged);
the second opinion: :mod:`.second_opinion` (a heavier model on queued parts, once per
part and model), :mod:`.opinions` (both opinions, where they disagree),
:mod:`.opinion_cache`, :mod:`.opinion_report` (JSON + HTML).
"""
