"""The README's quickstart works when pasted."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_runs(capsys):
    text = README.read_text()
    quickstart = text.split("## Quickstart", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", quickstart, flags=re.S)[:1]
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "counts ['panobinostat']" in printed
    assert "pearson_delta_top50" in printed
    assert namespace["pred"].n_obs == namespace["sources"].n_obs
    assert namespace["predicted"].n_obs == namespace["controls"].n_obs
    assert namespace["model"].is_trained_


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    text = README.read_text()
    assert "make demo" in text
    assert "make test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci
