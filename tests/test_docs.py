"""The documentation builds with Sphinx, warnings as errors (the Read the Docs build, offline)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.slow
def test_sphinx_build_has_no_warnings(tmp_path):
    env = {**os.environ, "SXDIFF_DOCS_OFFLINE": "1", "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0, "\n".join(warnings) or result.stderr[-3000:]
    assert (tmp_path / "index.html").exists()
    assert (tmp_path / "metrics.html").exists()
    assert (tmp_path / "generated" / "sxdiff.metrics.ceiling.html").exists()
    assert (tmp_path / "faq.html").exists()
    for name in ("01_quickstart", "05_evaluation", "06_large_dataset"):  # notebooks from tutorials/, via links
        assert (tmp_path / "tutorials" / f"{name}.html").exists()
