"""Names every layer agrees on: the good class, the defective verdict, the unnamed defect."""

from __future__ import annotations

#: The label of defect-free samples in every dataset format, the first class of every
#: inspector, and the verdict of an image scored below the threshold.
GOOD = "good"
#: The verdict of an image scored at or above the threshold.
DEFECT = "defect"
#: The label of a defective image when no defect class was labelled (anomaly-only fits).
ANOMALY = "anomaly"
