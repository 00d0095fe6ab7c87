"""The caption adapter's words: a record and a sentence per defect, torch-free.

:func:`describe` is the entry point (after :func:`defectkit.core.decide.decide`);
:mod:`.geometry` measures a region, :mod:`.size` reads a compact defect's area off the
image, :mod:`.evidence` weighs the class head, the nearest shot's note and the
vocabulary, :mod:`.context` is what a fitted inspector hands over (shots, notes,
vocabulary), :mod:`.vocabulary` the terms and their prompts, :mod:`.text` every word.
"""

from defectkit.core.caption.context import CaptionContext
from defectkit.core.caption.describe import describe

__all__ = ["CaptionContext", "describe"]
