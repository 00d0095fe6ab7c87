"""The simulated textile benchmark of Megahed et al. (2025), and its few-shot protocol.

The images ship in the PyPI package ``conformal-clip-data``: 1,000 nominal, 500 with a
local defect and 500 with a global defect, all 250 x 250 JPEG named
``textile_XXXX.jpg``. File names repeat across the three folders, so a sample's unique
key is ``meta["id"] = "<folder>/<file>"`` (e.g. ``"local/textile_0001.jpg"``).
Because it is pip-installable, it is the one real benchmark a fresh machine always has.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from defectkit.core.images import is_image_file
from defectkit.core.labels import GOOD
from defectkit.datasets.base import Sample
from defectkit.errors import DatasetError

#: Folder name -> label. Nominal images are our ``"good"``.
GROUPS = {"nominal": GOOD, "local": "local", "global": "global"}


def _package_dirs() -> dict[str, Path]:
    try:
        import conformal_clip_data as ccd
    except ImportError:
        raise DatasetError(
            "the textile benchmark ships in the package conformal-clip-data: "
            "pip install conformal-clip-data"
        ) from None
    return {
        "nominal": Path(ccd.nominal_dir()),
        "local": Path(ccd.local_dir()),
        "global": Path(ccd.global_dir()),
    }


def load_textile(root: str | Path | None = None) -> list[Sample]:
    """List the textile benchmark (images are read lazily).

    Args:
        root: ``None`` for the packaged copy, or a folder holding ``nominal/``,
            ``local/`` and ``global/``.

    Returns:
        Nominal, then local, then global samples, files sorted; labels ``"good"``,
        ``"local"``, ``"global"``.
    """
    if root is None:
        dirs = _package_dirs()
    else:
        dirs = {group: Path(root) / group for group in GROUPS}
    samples = []
    for group, folder in dirs.items():
        if not folder.is_dir():
            raise DatasetError(
                f"{folder}: missing; the textile layout is ROOT/nominal, ROOT/local, ROOT/global"
                " (or leave the path unset to use the conformal-clip-data package)"
            )
        files = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and is_image_file(p) and not p.name.startswith(".")
        )
        samples += [
            Sample(label=GROUPS[group], path=p, meta={"id": f"{group}/{p.name}"}, crop=FRAME_CROP)
            for p in files
        ]
    if not samples:
        raise DatasetError(f"{root}: the textile folders hold no images")
    return samples


#: The simulated images carry a 1-pixel white line along the bottom and right edges (a
#: rendering frame, value ~255 in every image), which is not fabric. It has three times
#: the pixel detail of the weave and dominated every anomaly map's border, so the loader
#: crops it: images load as 249 x 249.
FRAME_CROP = (0, 0, 249, 249)


class TextileSplit(NamedTuple):
    """Training shots and the held-out test set of one protocol draw."""

    train: list[Sample]
    test: list[Sample]


def textile_protocol_split(
    samples: Sequence[Sample],
    n: int,
    seed: int = 0,
    *,
    test_good: int = 100,
    test_local: int = 50,
    test_global: int = 50,
) -> TextileSplit:
    """Megahed et al. (2025)'s few-shot protocol: n nominal + n defective shots, fixed test.

    Training holds ``n`` nominal and ``n`` defective images, half local and half global
    (for odd ``n`` the extra one is local); the test set holds 100 nominal, 50 local and
    50 global images, disjoint from training.

    Each class is shuffled once by the seed; the test set is the first images of each
    shuffle and training the next ones. So for one seed the test set is the same for
    every ``n`` and the training sets are nested (n=5 ⊂ n=10): a learning curve then
    measures more shots, not a different test draw.

    Args:
        samples: the benchmark, as :func:`load_textile` returns it (any order).
        n: shots per side (nominal / defective), >= 0.
        seed: the draw; the same seed gives the same split on every machine.
        test_good, test_local, test_global: test-set sizes (the paper's by default).

    Returns:
        ``TextileSplit(train, test)``, each ordered good, local, global.
    """
    if n < 0:
        raise DatasetError(f"n must be >= 0 shots, got {n}")
    wanted = {
        GOOD: (test_good, n),
        "local": (test_local, (n + 1) // 2),
        "global": (test_global, n // 2),
    }
    train: list[Sample] = []
    test: list[Sample] = []
    for index, (label, (n_test, n_train)) in enumerate(wanted.items()):
        # Sorted by name first, so the draw does not depend on the input order.
        pool = sorted((s for s in samples if s.label == label), key=lambda s: s.key)
        if len(pool) < n_test + n_train:
            raise DatasetError(
                f"the textile protocol needs {n_test + n_train} {label!r} images "
                f"({n_test} test + {n_train} training) but only {len(pool)} were given"
            )
        order = np.random.default_rng([seed, index]).permutation(len(pool))
        test += [pool[i] for i in order[:n_test]]
        train += [pool[i] for i in order[n_test : n_test + n_train]]
    return TextileSplit(train=train, test=test)
