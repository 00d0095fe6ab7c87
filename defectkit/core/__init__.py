"""The torch-free core: what a factory PC needs to turn raw outputs into verdicts.

numpy, Pillow and scipy only (import-linter enforces it). Every layer above builds on
these modules, and the PyTorch path and every bundle engine share them, so a decision is
written once: :mod:`.labels` (class and verdict names), :mod:`.images` (reading and the
one preprocessing), :mod:`.geometry` (facts read off a mask), :mod:`.files` (atomic
writes, streaming SHA-256), :mod:`.overlay`, :mod:`.results` (result types),
:mod:`.decide` (verdict, label, mask, regions), :mod:`.caption` (words) and
:mod:`.predictor` (one Predictor for PyTorch and for every bundle engine).
"""
