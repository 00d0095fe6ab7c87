"""Heavy-model opinions already computed, keyed by part (SHA-256) and model id.

A heavy model takes seconds per part; the queue is opened again and again while it is
worked through, by the app and the CLI alike. Keying by the image's hash (not the
store's row id) means the same part seen through a daemon URL or its review.db, or
from two lines, is inspected once per heavy model; keying by the model's id means a
refitted heavy model is asked again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from defectkit.apps.reviewqueue.opinions import Opinion
from defectkit.apps.reviewqueue.store import ReviewStoreError

_DDL = """CREATE TABLE IF NOT EXISTS opinions (
    sha256 TEXT NOT NULL, model_id TEXT NOT NULL, opinion TEXT NOT NULL, mask_png BLOB,
    PRIMARY KEY (sha256, model_id))"""


class OpinionCache:
    """A SQLite file of heavy-model opinions (thread-safe: one connection, one lock)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._conn.execute(_DDL)
            self._conn.commit()
        except (sqlite3.Error, OSError) as exc:
            raise ReviewStoreError(
                f"second-opinion cache {self.path}: cannot open it ({exc}); pass another path"
            ) from None

    def get(self, sha256: str, model_id: str) -> Opinion | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT opinion, mask_png FROM opinions WHERE sha256 = ? AND model_id = ?",
                (sha256, model_id),
            ).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return Opinion(mask_png=bytes(row[1]) if row[1] is not None else None, **data)

    def put(self, sha256: str, model_id: str, opinion: Opinion) -> None:
        data = {
            "model": opinion.model, "verdict": opinion.verdict, "label": opinion.label,
            "score": opinion.score, "threshold": opinion.threshold,
            "probability": opinion.probability, "caption": opinion.caption,
        }  # fmt: skip
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO opinions VALUES (?, ?, ?, ?)",
                (sha256, model_id, json.dumps(data), opinion.mask_png),
            )
            self._conn.commit()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
