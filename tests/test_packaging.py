"""The built distribution: one wheel, three import names, nothing left behind.

The source tree maps ``drivers/`` to ``lsci.drivers`` and ``plugins/napari_lsci/`` to
``napari_lsci``; an editable install can hide a mapping mistake that a built wheel exposes, so
this test builds the sdist and wheel for real and imports from the wheel alone.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

# One build at a time: two test processes building from the same tree at once race on its
# lsci.egg-info folder.
pytestmark = pytest.mark.serial

# Where each source folder lands inside the wheel.
SOURCE_TO_WHEEL = {
    "lsci": "lsci",
    "drivers": "lsci/drivers",
    "plugins/napari_lsci": "napari_lsci",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("dist")
    # sdist first, then the wheel from the sdist: proves the sdist is complete too.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(outdir), str(PROJECT_ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = outdir.glob("lsci-*.whl")
    return path


def expected_wheel_files() -> set[str]:
    """Every Python module and data file of the source tree, at its path inside the wheel."""
    expected = set()
    for source, target in SOURCE_TO_WHEEL.items():
        root = PROJECT_ROOT / source
        for path in root.rglob("*"):
            if path.suffix in {".py", ".yaml"} and "__pycache__" not in path.parts:
                expected.add(f"{target}/{path.relative_to(root).as_posix()}")
    return expected


@pytest.mark.slow
def test_wheel_contains_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = expected_wheel_files() - names
    assert not missing, f"not in the wheel (list the package in pyproject.toml): {sorted(missing)}"


@pytest.mark.slow
def test_wheel_declares_entry_points(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "lsci = lsci.cli:main" in text
    assert "[napari.manifest]" in text
    assert "napari_lsci:napari.yaml" in text


@pytest.mark.slow
def test_wheel_imports_all_three_names(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "-q",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    # -S skips site-packages (and with it the editable install); dependencies come after the wheel.
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "import lsci, lsci.drivers, napari_lsci\n"
        "for m in (lsci, lsci.drivers, napari_lsci):\n"
        "    assert m.__file__.startswith(sys.argv[1]), m.__file__\n"
        "print(lsci.__version__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(target), site_packages],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == __import__("lsci").__version__
