# The package is imported from the source tree (python/) unless an installed one comes first;
# the library from MOEKIT_LIBRARY (ctest sets it) or the package's own search (build/libmoekit.so).
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "python") not in sys.path:
    sys.path.insert(0, str(ROOT / "python"))
