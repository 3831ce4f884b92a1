"""Developer tooling: local AWS from template.yaml, sample data, handler invocation, the demo."""

import sys
from pathlib import Path

# Lambda puts the layer's python/ folder on the path; locally the layer's source folder plays that part.
_LAYER = str(Path(__file__).resolve().parent.parent / "layers" / "common")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
