"""``python -m defectkit``: the ``inspect`` command."""

import sys

from defectkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
