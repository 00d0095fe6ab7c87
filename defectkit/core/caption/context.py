"""The fitted context a caption cites: the labelled shots (classes, notes) and the vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from defectkit.errors import ConfigError


@dataclass(frozen=True)
class CaptionContext:
    """What a caption needs beside one image's outputs: fixed once an inspector is fitted.

    Travels as plain JSON in a model folder's ``config.json`` and a bundle's manifest
    (:meth:`to_dict`), so the runtime cites notes and names terms without torch.

    Attributes:
        shot_labels: the class of each prototype's labelled shot, in prototype order
            (the columns of the graph's ``prototype_similarity``).
        shot_notes: each of those shots' note, None where the engineer wrote none.
        vocabulary: entries in file form (``"scratch"``, ``"attribute: dark"``) in the
            order of ``vocab_scores``; empty without a text-aligned backbone.
    """

    shot_labels: tuple[str, ...] = ()
    shot_notes: tuple[str | None, ...] = ()
    vocabulary: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.shot_labels) != len(self.shot_notes):
            raise ConfigError(
                f"{len(self.shot_labels)} shot classes but {len(self.shot_notes)} shot notes"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "shots": [
                {"label": label, "note": note}
                for label, note in zip(self.shot_labels, self.shot_notes, strict=True)
            ],
            "vocabulary": list(self.vocabulary),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CaptionContext:
        """Read :meth:`to_dict`'s JSON; missing keys (older folders) mean none."""
        data = data or {}
        shots = list(data.get("shots") or ())
        return cls(
            shot_labels=tuple(str(s["label"]) for s in shots),
            shot_notes=tuple((str(s["note"]) if s.get("note") else None) for s in shots),
            vocabulary=tuple(str(v) for v in data.get("vocabulary") or ()),
        )
