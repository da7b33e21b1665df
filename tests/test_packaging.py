"""The wheel carries the bundled datasets and its loaders work offline from the installed wheel."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
    )
    (path,) = out.glob("sxdiff-*.whl")
    return path


def test_wheel_contains_bundled_datasets(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for dataset in ("glioblastoma_panobinostat", "l1000_kinase_inhibitors", "norman_crispra", "mcfaline23_crispri"):
        assert f"sxdiff/datasets/_data/{dataset}.h5ad" in names
    assert not any(name.startswith("tests/") for name in names)
    assert wheel.stat().st_size < 15 * 1024 * 1024


def test_loaders_work_offline_from_the_installed_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True
    )
    code = (
        "import sxdiff, sys; assert sxdiff.__file__.startswith(sys.argv[1]), sxdiff.__file__; "
        "print(sxdiff.datasets.glioblastoma_panobinostat().shape, sxdiff.datasets.l1000_kinase_inhibitors().shape, "
        "sxdiff.datasets.norman_crispra().shape)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(target)], env=env, capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert result.stdout.strip() == "(5000, 300) (377, 978) (3375, 500)"
