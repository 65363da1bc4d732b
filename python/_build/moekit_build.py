"""The package's own PEP 517 build backend: writes the wheel with the standard library alone.

pip builds in an isolated environment that it fills from the package index; a backend that needs
nothing (``requires = []``) makes ``pip install ./python`` work offline, on any Python, with or
without setuptools and wheel installed. The package is pure Python; a libmoekit.so copied into
python/moekit/ first (or named by MOEKIT_BUNDLE_LIBRARY) goes into the wheel, which is then tagged
for this platform.
"""

import base64
import hashlib
import io
import os
import shutil
import sysconfig
import tarfile
import zipfile
from pathlib import Path

NAME = "moekit"
VERSION = "0.1.0"
ROOT = Path(__file__).resolve().parent.parent
LIBRARY_NAMES = ("libmoekit.so", "libmoekit.dylib", "moekit.dll")

METADATA = f"""Metadata-Version: 2.1
Name: {NAME}
Version: {VERSION}
Summary: Mixture-of-experts expert layers as transformers computes them: Python bindings of libmoekit
Requires-Python: >=3.9
Provides-Extra: numpy
Requires-Dist: numpy; extra == "numpy"
Provides-Extra: torch
Requires-Dist: torch>=2.4; extra == "torch"
Provides-Extra: transformers
Requires-Dist: torch>=2.4; extra == "transformers"
Requires-Dist: transformers>=5; extra == "transformers"
Description-Content-Type: text/markdown

"""


def _files() -> dict:
    """Archive name -> source path of everything the wheel installs."""
    files = {f"{NAME}/{p.name}": p for p in sorted((ROOT / NAME).glob("*.py"))}
    bundled = os.environ.get("MOEKIT_BUNDLE_LIBRARY")
    if bundled:
        if not Path(bundled).is_file():
            raise FileNotFoundError(f"MOEKIT_BUNDLE_LIBRARY={bundled} is not a file (pip builds in another "
                                    "folder: give an absolute path)")
        files[f"{NAME}/{Path(bundled).name}"] = Path(bundled)
    for lib in LIBRARY_NAMES:
        if (ROOT / NAME / lib).is_file():
            files.setdefault(f"{NAME}/{lib}", ROOT / NAME / lib)
    return files


def _tag(files: dict) -> str:
    if any(Path(name).name in LIBRARY_NAMES for name in files):
        return "py3-none-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "py3-none-any"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _metadata() -> str:
    return METADATA + (ROOT / "README.md").read_text(encoding="utf-8")


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = _files()
    tag = _tag(files)
    dist_info = f"{NAME}-{VERSION}.dist-info"
    wheel_name = f"{NAME}-{VERSION}-{tag}.whl"
    entries = [(name, path.read_bytes()) for name, path in files.items()]
    entries.append((f"{dist_info}/METADATA", _metadata().encode()))
    entries.append((f"{dist_info}/WHEEL", (f"Wheel-Version: 1.0\nGenerator: moekit_build\n"
                                           f"Root-Is-Purelib: {'true' if tag.endswith('any') else 'false'}\n"
                                           f"Tag: {tag}\n").encode()))
    record = [_record_line(name, data) for name, data in entries] + [f"{dist_info}/RECORD,,"]
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    with zipfile.ZipFile(Path(wheel_directory) / wheel_name, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if Path(name).name in LIBRARY_NAMES else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    base = f"{NAME}-{VERSION}"
    sdist_name = f"{base}.tar.gz"
    with tarfile.open(Path(sdist_directory) / sdist_name, "w:gz") as tf:
        for rel in ["pyproject.toml", "README.md", "_build/moekit_build.py"] + \
                   [f"{NAME}/{p.name}" for p in sorted((ROOT / NAME).glob("*.py"))]:
            tf.add(ROOT / rel, arcname=f"{base}/{rel}")
        pkg_info = _metadata().encode()
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size = len(pkg_info)
        tf.addfile(info, io.BytesIO(pkg_info))
    return sdist_name


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = Path(metadata_directory) / f"{NAME}-{VERSION}.dist-info"
    if dist_info.exists():
        shutil.rmtree(dist_info)
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(_metadata(), encoding="utf-8")
    return dist_info.name
