"""The caption vocabulary: defect terms and appearance attributes, and their prompts.

With a text-aligned backbone (open_clip) every entry becomes one text embedding at fit
time: the mean of its prompts' embeddings, re-normalised - CLIP's prompt ensembling,
which is steadier than any single phrasing. Those embeddings are baked into the
inspector, so the line-side runtime never needs a text model; the entries themselves
travel in the manifest as plain strings.

Entries are written as in a vocabulary file, one per line::

    scratch
    missing part
    attribute: dark
    # comments and blank lines are ignored

Terms name defects and compete with each other; attributes describe appearance and
compete among themselves. Torch-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from defectkit.errors import ConfigError

#: Kinds of vocabulary entry (the words of ``Vocabulary.kinds``; not verdicts).
TERM = "defect"
ATTRIBUTE = "attribute"
_ATTRIBUTE_PREFIX = "attribute:"

DEFAULT_TERMS = (
    "scratch",
    "crack",
    "dent",
    "stain",
    "hole",
    "contamination",
    "discolouration",
    "missing part",
    "burr",
    "bubble",
    "chip",
    "deformation",
    "spot",
    "tear",
    "fold",
    "corrosion",
)
DEFAULT_ATTRIBUTES = ("dark", "bright", "reddish-brown", "glossy", "rough", "frayed")

#: Prompt templates for defect terms; ``{}`` is the term.
TERM_TEMPLATES = (
    "a photo of a {} on a surface",
    "a close-up photo of a {} on a product",
    "an industrial inspection image showing a {}",
    "a surface with a {} defect",
)
#: Prompt templates for attributes; ``{}`` is the attribute.
ATTRIBUTE_TEMPLATES = (
    "a photo of a {} defect on a surface",
    "a close-up photo of a {} mark on a product",
    "a {} flaw on an industrial part",
)


@dataclass(frozen=True)
class Vocabulary:
    """Ordered entries: ``terms`` first, then ``attributes``, as in the embedding matrix.

    Iterating yields the entries in file form (``"scratch"``, ``"attribute: dark"``), so
    ``list(vocabulary)`` is what a manifest stores and :meth:`from_lines` reads back.
    """

    terms: tuple[str, ...] = DEFAULT_TERMS
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES

    def __post_init__(self) -> None:
        for kind, values in ((TERM, self.terms), (ATTRIBUTE, self.attributes)):
            if len(set(values)) != len(values):
                raise ConfigError(f"the vocabulary lists a {kind} term twice: {list(values)}")

    @property
    def names(self) -> tuple[str, ...]:
        """Every entry's word(s), in embedding order."""
        return self.terms + self.attributes

    @property
    def kinds(self) -> tuple[str, ...]:
        """``"defect"`` or ``"attribute"`` for every entry, in embedding order."""
        return (TERM,) * len(self.terms) + (ATTRIBUTE,) * len(self.attributes)

    def __len__(self) -> int:
        return len(self.terms) + len(self.attributes)

    def __iter__(self) -> Iterator[str]:
        yield from self.terms
        yield from (f"{_ATTRIBUTE_PREFIX} {a}" for a in self.attributes)

    def prompts(self) -> list[list[str]]:
        """For every entry (embedding order), its prompts."""
        return [[t.format(term) for t in TERM_TEMPLATES] for term in self.terms] + [
            [t.format(attr) for t in ATTRIBUTE_TEMPLATES] for attr in self.attributes
        ]

    def extended(self, entries: Iterable[str]) -> Vocabulary:
        """A copy with more entries (file form); ones already present are skipped."""
        extra = Vocabulary.from_lines(entries, defaults=False)
        terms = self.terms + tuple(t for t in extra.terms if t not in self.terms)
        attrs = self.attributes + tuple(a for a in extra.attributes if a not in self.attributes)
        return Vocabulary(terms, attrs)

    @classmethod
    def from_lines(cls, lines: Iterable[str], *, defaults: bool = False) -> Vocabulary:
        """Parse entries in file form; ``defaults=True`` appends them to the default ones."""
        terms: list[str] = []
        attrs: list[str] = []
        for raw in lines:
            line = " ".join(raw.split())  # trim, collapse inner whitespace
            if not line or line.startswith("#"):
                continue
            if line.lower().startswith(_ATTRIBUTE_PREFIX):
                target, line = attrs, line[len(_ATTRIBUTE_PREFIX) :].strip()
            else:
                target = terms
            if not line:
                raise ConfigError(f"empty attribute in the vocabulary: {raw!r}")
            if line not in target:
                target.append(line)
        vocab = cls(tuple(terms), tuple(attrs))
        return cls().extended(vocab) if defaults else vocab


def load_vocabulary(
    extra: str | Path | Sequence[str] | None = None, *, defaults: bool = True
) -> Vocabulary:
    """The default vocabulary, extended by a list of entries or a text file.

    Args:
        extra: entries in file form, or a path to a UTF-8 file with one entry per line.
        defaults: start from :data:`DEFAULT_TERMS` and :data:`DEFAULT_ATTRIBUTES`;
            False uses only ``extra``.

    Raises:
        ConfigError: the file cannot be read, or the result is empty.
    """
    lines: Iterable[str] = ()
    if isinstance(extra, (str, Path)):
        path = Path(extra).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the vocabulary file ({exc})") from None
    elif extra is not None:
        lines = list(extra)
    vocab = Vocabulary.from_lines(lines, defaults=defaults)
    if len(vocab) == 0:
        raise ConfigError("the vocabulary is empty: give at least one term, one per line")
    return vocab
