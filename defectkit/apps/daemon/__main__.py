"""``python -m defectkit.apps.daemon --bundle DIR ...``: the daemon without the umbrella CLI."""

import sys

from defectkit.apps.daemon.cli import main

if __name__ == "__main__":
    sys.exit(main())
