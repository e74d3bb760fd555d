"""The README's promises that can be checked without installing anything."""

import re
from pathlib import Path

import contextlib
import io

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def setup_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    return block.strip().splitlines()


def test_the_readme_opens_with_the_two_setup_commands():
    assert README.index("```bash") < 20
    install_and_run, install_and_test = setup_commands()
    assert install_and_run.endswith("adamlab train")
    assert install_and_test.endswith("python -m pytest")


def test_ci_runs_exactly_the_readmes_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup_commands()[1] in ci_lines


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_the_quickstart_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(python_blocks()[0], {})
    assert (tmp_path / "optimizer.pt").exists()


def test_the_maths_example_prints_what_the_readme_says():
    block = python_blocks()[1]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(block, {})
    promised = re.search(r"# (.*)$", block.strip().splitlines()[-1]).group(1).split()
    for value, prefix in zip(printed.getvalue().split(), promised, strict=True):
        assert value.startswith(prefix.rstrip(".")), (value, prefix)
