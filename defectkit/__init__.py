"""defectkit: few-shot defect inspection for production lines.

Importing the package is cheap and never imports torch: the factory-side runtime
(``defectkit.exporters.runtime``) and the daemon need only numpy and Pillow.
"""

from defectkit.errors import DefectkitError

__version__ = "0.1.0"

__all__ = ["DefectkitError", "__version__"]
