"""anomalib's PatchCore on the embedded EfficientNet-Lite0 weights, for side-by-side runs.

anomalib cannot download timm weights offline, so its ``PatchcoreModel`` is built with
``pre_trained=False`` on timm's ``tf_efficientnet_lite0`` and our embedded weights are
loaded into its feature extractor (the same tensor names once the ``feature_extractor.``
prefix is dropped; loaded strictly), with our normalisation (mean = std = 0.5), three
layers (strides 4, 8, 16) and anomalib's default coreset ratio (0.1). Used by
``export_latency.py`` (speed) and ``textile_fewshot.py`` (accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LAYERS = ["blocks.1", "blocks.2", "blocks.4"]  # timm names of strides 4, 8, 16
DEFAULT_SIZE = (224, 224)
CORESET_RATIO = 0.1


def build_patchcore(good_images: Sequence[np.ndarray], size: tuple[int, int] = DEFAULT_SIZE):
    """Fit anomalib's ``Patchcore`` on ``good_images`` -> (model in eval mode, weights id)."""
    import torch
    from anomalib.models import Patchcore
    from anomalib.pre_processing import PreProcessor
    from torchvision.transforms.v2 import Compose, Normalize, Resize

    from defectkit.core.images import preprocess
    from defectkit.inspect.backbones.effnet import _build

    pre = PreProcessor(transform=Compose([Resize(size, antialias=True), Normalize([0.5] * 3, [0.5] * 3)]))
    model = Patchcore(
        backbone="tf_efficientnet_lite0",
        layers=LAYERS,
        pre_trained=False,  # offline: no timm download; our weights go in below
        coreset_sampling_ratio=CORESET_RATIO,
        pre_processor=pre,
        post_processor=False,  # no validation set to calibrate its normalisation: raw scores
        evaluator=False,
        visualizer=False,
    )
    extractor = model.model.feature_extractor
    classifier, weights_id = _build(None, True)
    source = classifier.state_dict()
    extractor.load_state_dict({k: source[k.split(".", 1)[1]] for k in extractor.state_dict()})
    x = torch.from_numpy(preprocess(list(good_images), size))
    model.model.train()
    extractor.eval()
    with torch.no_grad():
        model.model(pre.transform(x))
    model.model.subsample_embedding(CORESET_RATIO)
    model.eval()
    return model, weights_id


def patchcore_predict(model, images: Sequence[np.ndarray], size: tuple[int, int] = DEFAULT_SIZE, batch: int = 8):
    """Raw PatchCore image scores (N) and anomaly maps (N x H x W, at ``size``)."""
    import torch

    from defectkit.core.images import preprocess

    scores, maps = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(preprocess(list(images[start : start + batch]), size))
            out = model.model(model.pre_processor.transform(x))
            scores.append(out.pred_score.reshape(-1).numpy())
            maps.append(out.anomaly_map.reshape(len(x), *out.anomaly_map.shape[-2:]).numpy())
    return np.concatenate(scores), np.concatenate(maps)
