"""Errors a user can cause. The CLI prints their message on one line and exits 2."""


class DefectkitError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class BackboneError(DefectkitError):
    """Unknown backbone name or a backbone that cannot be built."""


class WeightsNotFoundError(BackboneError):
    """Pretrained weights are not on this machine (we never fall back to random weights)."""


class DatasetError(DefectkitError):
    """A dataset folder, manifest, image or mask that cannot be used."""


class ImageError(DefectkitError):
    """An image that cannot be read or converted (empty, truncated, not an image, too big)."""


class SupportSetError(DefectkitError):
    """Labelled shots that cannot fit an inspector (no good shots, a class with no shots)."""


class ModelFormatError(DefectkitError):
    """A saved inspector folder that is incomplete, tampered with or from another version."""


class NotFittedError(DefectkitError):
    """An operation that needs a fitted inspector was given an unfitted one."""


class BundleError(DefectkitError):
    """An exported bundle that is incomplete, tampered with, or whose export failed its self-check."""


class ConfigError(DefectkitError):
    """Inconsistent options (a flag value out of range, two flags that exclude each other)."""
