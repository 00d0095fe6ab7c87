"""Every word a caption may contain, in one place, so a translation is one more dict.

:mod:`defectkit.core.caption.describe` decides *what* is true of a defect (a record of facts
and symbolic values such as ``"upper left"`` or ``"falling"``); this module decides how
those facts read. A translation copies :data:`EN`, translates the values (keep the
``{placeholders}``), and registers itself in :data:`LANGUAGES`. Word order lives in the
templates, so languages that put the size before the place can do so.

Numbers are formatted here too (``{confidence:.0f}``), because decimal marks and spacing
before ``%`` differ between languages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from defectkit.errors import ConfigError

EN: dict[str, Any] = {
    # A whole sentence when nothing is wrong: the verdict and the two numbers behind it.
    "no_defect": "No defect found (score {score:.2f}, threshold {threshold:.2f}).",
    # A type-only model (fitted without good shots) sorts defects; it never judges good.
    "type_only": "Type {label} ({percent} %); no good/defect verdict (type-only model).",
    # What the defect is. {type} is the class name as labelled, {Type} capitalised.
    "type_confident": "{Type}, {confidence:.0f} % confidence",
    "type_uncertain": "Possibly {type} (uncertain, {confidence:.0f} %)",
    "type_unclassified": "{Type}",  # "anomaly": no defect class was labelled
    # The anomaly score says defect, but the class head finds the region closer to the
    # good shots than to any labelled defect: the type is only the nearest defect class.
    "type_near_good": (
        "Possibly {type} (the nearest labelled type, {confidence:.0f} %; "
        "the class head finds it nearer the good shots)"
    ),
    # Regions after the first: the class head pooled the most anomalous patches, so
    # its class is evidence about the first region only.
    "type_secondary": "Another region, possibly {type}",
    "type_secondary_unclassified": "Another anomalous region",
    "not_localised": "not localised to a region (score {score:.2f}, threshold {threshold:.2f})",
    # Where: a 3 x 3 grid of the image, "row-column" cell ids -> words.
    "cells": {
        "upper-left": "upper left",
        "upper-centre": "upper centre",
        "upper-right": "upper right",
        "middle-left": "centre left",
        "middle-centre": "centre",
        "middle-right": "centre right",
        "lower-left": "lower left",
        "lower-centre": "lower centre",
        "lower-right": "lower right",
    },
    # A centroid within a few pixels of a cell border names both cells.
    "between_cells": " / ",
    # How big. Elongated regions state their length: an estimate from the defect's own
    # pixels where its edge is sharp, a lower bound (the anomaly map's region, which
    # loses faint ends) elsewhere. Compact ones their
    # area read off the pixels: an estimate where the defect's edge is sharp, a range
    # where it is soft, an upper bound (the region, blur included) where the pixels do
    # not tell. {percent} is of the estimate, or of the upper end.
    "length_about_px": "about {length:.0f} px long",
    "length_about_mm": "about {length:.1f} mm long",
    "length_at_least_px": "at least {length:.0f} px long",
    "length_at_least_mm": "at least {length:.1f} mm long",
    "area_about_px": "about {area:,.0f} px ({percent:.1f} % of the part)",
    "area_about_mm": "about {diameter:.1f} mm across ({percent:.1f} % of the part)",
    "area_between_px": "{low:,.0f} to {high:,.0f} px (at most {percent:.1f} % of the part)",
    "area_between_mm": "{low:.1f} to {high:.1f} mm across (at most {percent:.1f} % of the part)",
    "area_up_to_px": "up to {area:,.0f} px ({percent:.1f} % of the part)",
    "area_up_to_mm": "up to {diameter:.1f} mm across ({percent:.1f} % of the part)",
    # Shape and orientation (orientation only for elongated regions).
    "shape": {
        "thin": "thin and {orientation}",
        "elongated": "elongated and {orientation}",
        "compact": "compact",
    },
    "orientation": {
        "horizontal": "horizontal",
        "vertical": "vertical",
        "rising": "diagonal ↗",
        "falling": "diagonal ↘",
    },
    "severity": "{level} ({ratio:.1f}× threshold)",
    "severity_levels": {"minor": "minor", "moderate": "moderate", "severe": "severe"},
    # Text-aligned backbones only: the vocabulary term that best matches the region.
    "vocabulary": "image-text match {terms}",
    "vocabulary_term": "'{term}'",
    "vocabulary_separator": ", ",
    # The engineer's own words about the most similar labelled shot of the same class.
    "note": "like the labelled example '{note}'",
    "separator": ", ",
    "note_separator": " — ",
    "end": ".",
}

#: Language code -> strings. ``describe(..., language="en")`` picks one.
LANGUAGES: dict[str, Mapping[str, Any]] = {"en": EN}


def strings(language: str = "en") -> Mapping[str, Any]:
    """The strings of ``language``; an unknown code raises :class:`ConfigError`."""
    try:
        return LANGUAGES[language]
    except KeyError:
        raise ConfigError(
            f"no caption strings for language {language!r}; known: {', '.join(LANGUAGES)}"
        ) from None
