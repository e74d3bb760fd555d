"""The README's promises that can be checked without installing anything."""

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

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


def test_the_scaling_out_example_prints_what_the_readme_says(tmp_path):
    """Four ranks, a checkpoint, two ranks resuming it: the script as the README shows it."""
    script = tmp_path / "scale_out.py"
    script.write_text(python_blocks()[2])
    finished = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert finished.returncode == 0, finished.stderr[-3000:]
    section = README[README.index("## Scaling out"):]
    promised = re.search(r"```text\n(.*?)```", section, re.S).group(1).splitlines()
    assert finished.stdout.splitlines() == promised
