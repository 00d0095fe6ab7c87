"""``inspect export`` and ``inspect threshold``."""

from __future__ import annotations

import json

from defectkit.exporters.bundle import PRECISIONS, TARGETS

SIGN_HELP = (
    "sign the bundle with this Ed25519 private key (PEM), for daemons started with "
    "--trust PUBKEY; make a pair with `python -m defectkit.exporters.signing keygen lab`"
)


BAND_HELP = (
    "uncertainty band: parts whose score is within MARGIN (a fraction, 0.1 = 10%%) of the "
    "image threshold, or whose defect class probability is below MIN_PROB, are marked "
    "'review' by `inspect serve` and answered by its --review-policy"
)


def _band(args):
    """The --band value, parsed before any slow work so a typo fails at once."""
    if getattr(args, "band", None) is None:
        return None
    from defectkit.exporters.review_band import parse_band

    return parse_band(args.band)


def _set_band(folder, band) -> None:
    from defectkit.exporters.review_band import describe_band, set_review_band

    set_review_band(folder, band)
    print(describe_band(band if band.active else None))


def _signing_key(args):
    """The --sign key, loaded before any slow work so a wrong path fails at once."""
    if not getattr(args, "sign", None):
        return None
    from defectkit.exporters.signing import load_private_key

    return load_private_key(args.sign)


def _sign(folder, key) -> None:
    from defectkit.exporters.signing import sign_bundle

    path = sign_bundle(folder, key)
    print(f"signed {folder} ({path.name})")


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="export a model folder to an OpenVINO or ONNX bundle (self-checked)",
        description="Export a fitted model folder to a bundle: the model (OpenVINO IR or ONNX) and "
        "manifest.json (input size, normalisation, classes, thresholds, hashes, self-check). The "
        "exported model is run on check images and compared with PyTorch; if they disagree beyond "
        "the stated tolerance the export fails and no bundle is written.",
    )  # fmt: skip
    p.add_argument("model", metavar="MODEL_DIR", help="model folder from `inspect fit`")
    p.add_argument(
        "--target",
        required=True,
        choices=TARGETS,
        help="openvino: model.xml + model.bin for OpenVINO; onnx: model.onnx for ONNX Runtime",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="BUNDLE_DIR", help="bundle folder to write"
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="fp32 (default; matches PyTorch to 1e-4) or fp16 (half the size; see the "
        "self-check numbers in the manifest)",
    )
    p.add_argument(
        "--device", default="CPU", help="device the self-check runs the bundle on (default: CPU)"
    )
    p.add_argument(
        "--check-images",
        nargs="+",
        metavar="IMAGE_OR_DIR",
        help="images for the self-check, ideally the support images (default: generated textures)",
    )
    p.add_argument("--band", metavar="MARGIN[,MIN_PROB]", help=BAND_HELP)
    p.add_argument("--sign", metavar="KEY", help=SIGN_HELP)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "threshold",
        help="show or move a bundle's thresholds without re-exporting",
        description="Print a bundle's thresholds, or set them: the manifest is rewritten and "
        "re-hashed, the model files are untouched. The bundle's id changes with its settings.",
    )
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    p.add_argument("--image", type=float,
                   help="image-score threshold (defective at or above); a lower one takes --pixel with it")
    p.add_argument("--pixel", type=float, help="anomaly-map threshold for defect regions")
    p.add_argument("--min-defect-area", type=int, help="smallest reported region, in pixels")
    p.add_argument("--band", metavar="MARGIN[,MIN_PROB]", help=BAND_HELP + "; 0 removes it")
    p.add_argument("--sign", metavar="KEY", help=SIGN_HELP + "; moving a threshold voids an "
                   "earlier signature, so sign again here")  # fmt: skip
    p.set_defaults(func=cmd_threshold)


def _read_images(inputs: list[str]) -> list:
    from defectkit.core.images import list_image_files, read_image

    return [read_image(p) for p in list_image_files(inputs)[:24]]


def cmd_export(args) -> int:
    from defectkit.exporters.export import export_bundle
    from defectkit.inspect.inspector import Inspector

    key, band = _signing_key(args), _band(args)
    inspector = Inspector.load(args.model)
    images = _read_images(args.check_images) if args.check_images else None
    out = export_bundle(
        inspector, args.output, target=args.target, precision=args.precision,
        check_images=images, device=args.device,
    )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    check = manifest["selfcheck"]
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(
        f"exported {out} ({args.target}, {args.precision}, {size / 1e6:.1f} MB, "
        f"tiles {manifest['input_size'][0]}x{manifest['input_size'][1]}, {manifest.get('mode', 'inspect')})"
    )
    print(
        f"self-check on {check['images']} images ({check['engine']} {check['inference_precision']} "
        f"on {check['device']}): score max rel {check['score_max_rel']:.2g}, map max abs "
        f"{check['map_max_abs']:.2g}, class probabilities max abs {check.get('prob_max_abs', 0):.2g}, class "
        f"{check['argmax_agree']}/{check['argmax_checked']} -> passed"
    )
    if images is None:
        print(
            "note: checked on generated textures; pass --check-images with the support images "
            "to check on real parts"
        )
    if band is not None:
        _set_band(out, band)
    if key is not None:
        _sign(out, key)
    return 0


def cmd_threshold(args) -> int:
    from defectkit.core.results import Thresholds
    from defectkit.exporters.bundle import read_manifest, set_thresholds
    from defectkit.exporters.review_band import describe_band, review_band_of

    key, band = _signing_key(args), _band(args)
    if args.image is None and args.pixel is None and args.min_defect_area is None:
        t = Thresholds.from_dict(read_manifest(args.bundle)["thresholds"])
    else:
        t = set_thresholds(
            args.bundle, image=args.image, pixel=args.pixel, min_defect_area=args.min_defect_area
        )
    print(f"image {t.image:.6g}  pixel {t.pixel:.6g}  min_defect_area {t.min_defect_area}")
    if band is not None:
        _set_band(args.bundle, band)
    else:
        print(describe_band(review_band_of(read_manifest(args.bundle))))
    if key is not None:
        _sign(args.bundle, key)
    return 0
