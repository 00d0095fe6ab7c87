"""The line-to-lab loop, staged for the browser test and the labelling benchmark.

A line bundle fitted on four good images and three scratches (no spots yet), exported
to ONNX with an uncertainty band, registered and promoted; a daemon following the
registry's ``current`` link, with a token, keeping uncertain parts in its review store.
With the embedded backbone that bundle holds both spots inside the band and guesses
each a scratch or good (which one, and which spot is the less certain, has moved with
the calibration: stop 23's thresholds, stop 26's edge discount, stop 30's class head
in the score); ``scratch_003`` and ``good_004`` are clear. The browser test corrects
the spot the review queue puts first, the least certain. Both spots lie at the image's
edge, and since the fit discounts edge patches by how far the good shots' edges run
(stop 26) the threshold sits further above them: the band is 20 %, not 15 %.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from defectkit.testing.opinions import samples

#: The line bundle's shots: the first four good images and the first three scratches.
LINE_SHOTS = {"good": 4, "scratch": 3}
#: Parts the line sends, in this order; the two spots (the first and the last) fall in the band.
PARTS = ("spot_002", "scratch_003", "good_004", "spot_003")
#: The band around the threshold (a fraction of it) that escalates the spots.
BAND = 0.2
TOKEN = "loop-token-0123456789abcdef"


@dataclass
class Line:
    """What the lab and the line share: the project, the registry, the image files."""

    root: Path
    files: dict[str, Path]
    project: Path
    registry: Path
    token_file: Path


def write_parts(folder: Path) -> dict[str, Path]:
    """Every synthetic image (6 good, 4 scratches, 4 spots, 128 x 128) as PNG -> {key: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for key, sample in samples().items():
        files[key] = folder / f"{key}.png"
        Image.fromarray(sample.load_image()).save(files[key])
    return files


def stage_line(root: Path, *, band: float = BAND) -> Line:
    """Project fitted on :data:`LINE_SHOTS`, exported with ``band``, registered, promoted."""
    from defectkit.apps.labelling.exporting import export_project
    from defectkit.apps.labelling.importing import add_files
    from defectkit.apps.labelling.project import Project
    from defectkit.exporters.review_band import ReviewBand, set_review_band
    from defectkit.testing.labelling import fast_config

    files = write_parts(root / "images")
    project = Project.open(root / "project")
    shots = [p for k, p in files.items() if int(k[-3:]) < LINE_SHOTS.get(k.split("_")[0], 0)]
    add_files(project, shots)
    project.add_class("scratch")
    for record in project.images:
        project.set_label(record.id, Path(record.name).stem.split("_")[0])
    project.fit(config=fast_config())
    export_project(project, "onnx")
    bundle = project.root / "exports" / "onnx-fp32"
    set_review_band(bundle, ReviewBand(score_margin=band))
    line = Line(root, files, project.root, root / "registry", root / "token")
    line.token_file.write_text(TOKEN)
    os.chmod(line.token_file, 0o600)
    gate_and_promote(line, bundle, accept="first version")
    return line


def gate_and_promote(line: Line, bundle: Path, *, accept: str | None = None):
    """Register ``bundle``, run the gate against the current version on the project's
    labelled images, promote it -> (entry, gate report)."""
    from defectkit.apps.labelling.project import Project
    from defectkit.exporters.gate import run_gate
    from defectkit.exporters.registry import Registry
    from defectkit.exporters.runtime import load_bundle

    registry = Registry(line.registry)
    entry = registry.add(bundle)
    current = registry.current_id()
    old = load_bundle(registry.bundle_path(current)) if current else None
    samples = Project.open(line.project, create=False).samples()
    new = load_bundle(registry.bundle_path(entry.id))
    report = run_gate(new, samples, old=old, report_dir=registry.gate_dir(entry.id))
    registry.record_gate(entry.id, report)
    registry.promote(entry.id, accept=None if report.passed else accept)
    return entry, report


def serve(line: Line):
    """``inspect serve`` following ``REGISTRY/current`` (a started, listening DaemonProcess)."""
    from defectkit.testing.processes import BundleUnderTest, DaemonProcess

    bundle = BundleUnderTest(line.registry / "current", fake=False)
    return DaemonProcess(
        bundle, "--db", str(line.root / "results.db"), "--review-store",
        str(line.root / "review.db"), "--review-policy", "hold", "--follow-interval", "0.5",
        "--token-file", str(line.token_file), "--station", "line3",
    ).wait_listening(120)  # fmt: skip


def post(url: str, path: Path) -> dict:
    """Send one part to the daemon as the line does (multipart, with its file name) ->
    its JSON answer."""
    boundary = "defectkit-loop-boundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"{path.name}\"\r\nContent-Type: image/png\r\n\r\n"
    ).encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{url}/v1/inspect", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                 "Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def wait_for_bundle(daemon, bundle_id: str, timeout: float = 60.0) -> None:
    """Until the daemon logs that it serves ``bundle_id`` (it follows the link)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.get("event") == "reloaded" and e.get("bundle_id") == bundle_id
               for e in daemon.events):  # fmt: skip
            return
        time.sleep(0.2)
    raise AssertionError(f"the daemon did not reload {bundle_id}:\n" + "\n".join(daemon.lines[-10:]))
