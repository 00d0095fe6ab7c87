"""The daemon runs with torch made unimportable (the factory PC has no torch)."""

import subprocess
import sys

from defectkit.testing.processes import REPO

SCRIPT = f"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
sys.path.insert(0, {str(REPO)!r})
import tempfile, pathlib
from defectkit.testing.daemon import load_fake_bundle, png_bytes, write_fake_bundle
import defectkit.cli.serve, defectkit.apps.daemon.api, defectkit.apps.daemon.service
from defectkit.apps.daemon.config import ServeConfig
from defectkit.apps.daemon.jobs import Job
from defectkit.apps.daemon.service import Service
tmp = pathlib.Path(tempfile.mkdtemp())
service = Service(ServeConfig(bundle=write_fake_bundle(tmp / "b"), db=str(tmp / "r.db"),
                              overlays=tmp / "ov"), loader=load_fake_bundle)
service.start()
job = Job("http", "x.png", data=png_bytes(200))
service.queue.offer(job)
assert job.future.result(10).body["verdict"] == "defect"
service.stop()
try:
    import defectkit.exporters.runtime  # the real runtime, once it exists, must be torch-free too
except ModuleNotFoundError as exc:
    assert exc.name == "defectkit.exporters.runtime", exc
assert sys.modules["torch"] is None
print("torch-free ok")
"""


def test_daemon_imports_and_inspects_without_torch():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch-free ok" in out.stdout
