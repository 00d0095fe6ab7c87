"""Screenshots of the line-to-lab loop for docs/operations.md, one per step.

Runs the loop's browser test (``tests/integration/test_app_browser_loop.py``: a daemon,
the app, the review queue with a second opinion, refit, export, the gate, promotion,
the daemon's reload) with its screenshots sent to a temporary folder, then writes them
to ``docs/images/loop-*.png`` at most 900 pixels wide, as small palette PNGs.

    python benchmarks/loop_pictures.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "images"
TEST = "tests/integration/test_app_browser_loop.py"
WIDTH = 900


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="defectkit-loop-") as tmp:
        env = {**os.environ, "DEFECTKIT_ARTIFACTS": tmp}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", TEST], cwd=REPO, env=env)
        if done.returncode != 0:
            print("the loop test failed; no pictures written", file=sys.stderr)
            return done.returncode
        OUT.mkdir(parents=True, exist_ok=True)
        for shot in sorted(Path(tmp, "app_browser_loop").glob("loop-*.png")):
            picture = Image.open(shot).convert("RGB")
            picture.thumbnail((WIDTH, WIDTH * 4))
            target = OUT / shot.name
            picture.quantize(colors=128).save(target, optimize=True)
            print(f"{target.relative_to(REPO)}: {target.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
