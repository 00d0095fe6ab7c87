"""Few-shot heads: support sets, augmentation, anomaly head, prototype head, calibration,
and the caption head (the graph part of the captions; the words are in defectkit.core.caption)."""
