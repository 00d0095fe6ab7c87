"""Few-shot heads: support sets, anomaly head, prototype head, calibration, captions."""
