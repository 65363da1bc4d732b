"""The README's Python example, extracted verbatim and run, so that the two cannot drift apart."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_python_example(tmp_path):
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- python-example:begin -->\s*```python\n(.*?)```\s*<!-- python-example:end -->", readme, re.S)
    assert m, "README.md has no Python example between <!-- python-example:begin --> and <!-- python-example:end -->"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [str(ROOT / "python"), os.environ.get("PYTHONPATH")]
                                                      if p))
    res = subprocess.run([sys.executable, "-c", m.group(1)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("(4, 64) float32 "), lines
    assert float(lines[0].split()[-1]) < 1e-5, lines
    assert "down_proj must be [E, H, I]" in lines[1], lines
