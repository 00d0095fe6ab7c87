"""What the graph says about a region's type: class probabilities, the nearest labelled
shot's note, and (text-aligned backbones) the vocabulary terms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from defectkit.core.caption.vocabulary import ATTRIBUTE, TERM, Vocabulary
from defectkit.core.decide import names_type
from defectkit.core.labels import ANOMALY
from defectkit.core.results import NoteMatch, VocabularyMatch

#: CLIP's logit scale: vocabulary cosines x 100 -> softmax shares, as in zero-shot use.
VOCAB_LOGIT_SCALE = 100.0
#: A vocabulary term is stated only when it wins at least this share of its group.
VOCAB_MIN_SHARE = 0.5


@dataclass(frozen=True)
class TypeEvidence:
    """The class head's word on the first region: type, probability, hedged, and whether
    ``good`` outscored it (the verdict then came from the anomaly score alone)."""

    type: str
    confidence: float | None
    uncertain: bool
    nearer_good: bool


def type_evidence(
    label: str, probabilities: Mapping[str, float], uncertain_below: float
) -> TypeEvidence:
    """The class head's evidence for the decided ``label``.

    The type is stated with its probability, and ``nearer_good`` set where the head does
    not back it (:func:`~defectkit.core.decide.names_type`), so the caption hedges it.
    An ``ANOMALY`` label (no defect class was labelled) has no confidence.
    """
    if label == ANOMALY or label not in probabilities:
        return TypeEvidence(label, None, False, False)
    p = float(probabilities[label])
    return TypeEvidence(
        type=label,
        confidence=round(p, 4),
        uncertain=p < uncertain_below,
        nearer_good=not names_type(probabilities, label),
    )


def nearest_note(
    similarity: Sequence[float], labels: Sequence[str], notes: Sequence[str | None], label: str
) -> NoteMatch | None:
    """The note of the most similar labelled shot of class ``label`` that has one.

    Args:
        similarity: P similarities (larger = nearer) of this image's region descriptor
            to the prototypes: the graph's ``prototype_similarity`` row.
        labels, notes: each prototype's shot class and note (None or "" for none), in
            prototype order.

    Returns:
        None when no shot of that class has a note.
    """
    if not len(similarity) == len(labels) == len(notes):
        raise ValueError(
            f"{len(similarity)} similarities for {len(labels)} shot labels and {len(notes)} notes"
        )
    best = None
    for index, (sim, shot_label, note) in enumerate(zip(similarity, labels, notes, strict=True)):
        if shot_label == label and note and (best is None or sim > similarity[best]):
            best = index
    if best is None:
        return None
    return NoteMatch(str(notes[best]), best, round(float(similarity[best]), 6))


def vocabulary_match(
    scores: Sequence[float], vocabulary: Vocabulary | Sequence[str]
) -> VocabularyMatch | None:
    """Vocabulary cosines (V) -> the winning defect term and attribute, with their shares.

    Shares are a softmax of ``VOCAB_LOGIT_SCALE`` x cosine within each group (terms,
    attributes); a winner below ``VOCAB_MIN_SHARE`` is not stated (``None``). Raw
    cosines are kept in ``scores``.
    """
    if not isinstance(vocabulary, Vocabulary):
        vocabulary = Vocabulary.from_lines(vocabulary)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size != len(vocabulary):
        raise ValueError(f"{scores.size} vocabulary scores for {len(vocabulary)} entries")
    if scores.size == 0:
        return None
    kinds = np.array(vocabulary.kinds)
    won: dict[str, tuple[str | None, float | None]] = {}
    for kind in (TERM, ATTRIBUTE):
        idx = np.flatnonzero(kinds == kind)
        won[kind] = (None, None)
        if idx.size:
            z = VOCAB_LOGIT_SCALE * scores[idx]
            share = np.exp(z - z.max())
            share /= share.sum()
            best = int(share.argmax())
            if share[best] >= VOCAB_MIN_SHARE:
                won[kind] = (vocabulary.names[idx[best]], round(float(share[best]), 4))
    return VocabularyMatch(
        scores={n: round(float(s), 6) for n, s in zip(vocabulary.names, scores, strict=True)},
        term=won[TERM][0],
        term_share=won[TERM][1],
        attribute=won[ATTRIBUTE][0],
        attribute_share=won[ATTRIBUTE][1],
    )
