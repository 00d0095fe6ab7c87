"""``import defectkit`` is cheap and torch-free; the front door's names load on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

LINE_SIDE = """
import sys
import defectkit
assert "torch" not in sys.modules, "import defectkit imported torch"
import defectkit.core.predictor, defectkit.core.caption, defectkit.exporters.runtime
import defectkit.apps.daemon.service, defectkit.apps.daemon.api, defectkit.cli.serve
from defectkit import load_bundle, load_dataset
heavy = sorted(m for m in ("torch", "timm", "open_clip", "torchvision") if m in sys.modules)
assert not heavy, heavy
print("torch-free ok")
"""


def test_the_package_runtime_and_daemon_import_no_torch():
    out = subprocess.run([sys.executable, "-c", LINE_SIDE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch-free ok" in out.stdout


def test_front_door_names():
    import defectkit
    from defectkit.exporters.runtime import load_bundle
    from defectkit.inspect.fit import fit
    from defectkit.inspect.inspector import Inspector, InspectorConfig

    assert defectkit.Inspector is Inspector and defectkit.InspectorConfig is InspectorConfig
    assert defectkit.fit is fit and defectkit.load_bundle is load_bundle
    assert callable(defectkit.load_dataset)
    assert {"Inspector", "fit", "load_bundle", "load_dataset"} <= set(dir(defectkit))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        defectkit.nope  # noqa: B018


def test_python_dash_m_defectkit_is_the_inspect_command():
    out = subprocess.run(
        [sys.executable, "-m", "defectkit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "usage: inspect" in out.stdout
    for command in ("fit", "predict", "eval", "demo", "export", "threshold", "serve", "app"):
        assert f"    {command}" in out.stdout
