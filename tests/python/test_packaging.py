"""The package builds and installs offline: the in-tree build backend, and pip where it is present."""

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parents[2] / "python"


def _backend():
    spec = importlib.util.spec_from_file_location("moekit_build", PYTHON_DIR / "_build" / "moekit_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _import_from(folder: Path) -> str:
    code = "import moekit, pathlib; print(pathlib.Path(moekit.__file__).parent); print(moekit.version())"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(folder)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         cwd=folder)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_wheel_from_the_in_tree_backend(tmp_path):
    backend = _backend()
    assert backend.get_requires_for_build_wheel() == []
    name = backend.build_wheel(str(tmp_path))
    with zipfile.ZipFile(tmp_path / name) as zf:
        names = set(zf.namelist())
        assert {"moekit/__init__.py", "moekit/transformers.py", "moekit-0.1.0.dist-info/RECORD"} <= names
        record = zf.read("moekit-0.1.0.dist-info/RECORD").decode()
        assert all(n in record for n in names)
        zf.extractall(tmp_path / "site")
    out = _import_from(tmp_path / "site")
    assert str(tmp_path / "site" / "moekit") in out


def test_pip_install_offline(tmp_path):
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip("pip is not installed for this Python")
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--target",
                          str(tmp_path / "site"), str(PYTHON_DIR)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert str(tmp_path / "site" / "moekit") in _import_from(tmp_path / "site")
