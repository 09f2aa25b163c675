"""Test setup for tests/gpu: make `import ich` work from the source tree
(bindings/python), as bindings/python/tests/conftest.py does. The library
is found as ich._lib describes (ICH_LIBRARY, ICH_BUILD_DIR, the repository's
build/ folder, then the system); the CUDA plugin beside it."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINDINGS = os.path.join(ROOT, "bindings", "python")
if BINDINGS not in sys.path:
    sys.path.insert(0, BINDINGS)
