"""The status line's words: every line starts with what happened, in words.

``✓`` done, **Partly done:**, **Confirm:** or **Error:** - words, not only an icon,
because headless and factory browsers often lack emoji fonts.
"""

from __future__ import annotations

from defectkit.apps.labelling.records import ProjectError


def ok(text: str) -> str:
    return f"✓ {text}"


def problem(text: str) -> str:
    return f"**Error:** {text}"


def partly(text: str) -> str:
    """Some of it was done (e.g. 8 of 10 files imported): not an error, not a success."""
    return f"**Partly done:** {text}"


def ask(text: str) -> str:
    """The engineer must confirm before anything is lost."""
    return f"**Confirm:** {text}"


def refuse(message: str) -> None:
    """Stop a handler with a message for the status line (a user mistake, not a bug)."""
    raise ProjectError(message)
