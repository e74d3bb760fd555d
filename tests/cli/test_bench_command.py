"""``adamlab bench`` as a user meets it: an estimate first, rows as they are measured (through a
pipe too), progress on stderr, and never a silent stretch or a broken JSON document."""

import io
import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from adamlab import bench, kernels
from adamlab.cli import bench as command
from adamlab.cli import main

ROOT = Path(__file__).parents[2]

@pytest.fixture
def tiny_layouts(monkeypatch):
    monkeypatch.setattr(bench, "layouts", lambda quick=False: {"few": [(300,)] * 3, "many": [(20,)] * 40})


def fake_time_series(series, params, repeats, synchronize, on_round):
    """A series timed in no time: the floor 1 ms, the contenders 1.5, 2.5, ... ms in their order."""
    for done in range(1, bench.WARMUP + repeats + 1):
        on_round(done, bench.WARMUP + repeats)
    return {"floor": 1.0, **{impl: 1.5 + index for index, impl in enumerate(series.contenders)}}


@pytest.fixture
def fake_timing(monkeypatch):
    """What is printed is the subject here, not what is measured: tests/test_bench.py times."""
    monkeypatch.setattr(bench, "_time_series", fake_time_series)


#: A bench (timed by fake_time_series) whose adagrad series waits until the file named first on
#: its command line exists: what the test reads before creating it was written mid-run.
HELD_BACK = """
import pathlib, sys, time
from adamlab import bench
from adamlab.cli import main
from tests.cli.test_bench_command import fake_time_series as time_series

bench.layouts = lambda quick=False: {"few": [(300,)] * 3}
go_on = pathlib.Path(sys.argv[1])

def held_back(series, *args):
    deadline = time.monotonic() + 120
    while series.optimizer == "adagrad" and not go_on.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return time_series(series, *args)

bench._time_series = held_back
raise SystemExit(main(["bench", "--optimizers", "momentum,adagrad", *sys.argv[2:]]))
"""


def read_until(process, pattern: bytes, seconds: float = 120) -> bytes:
    """What the process writes to its stdout pipe, up to a match of ``pattern`` at least."""
    out, deadline = b"", time.monotonic() + seconds
    while not re.search(pattern, out):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {pattern!r} on stdout; got {out!r}; stderr: {process.stderr.read()!r}")
        if select.select([process.stdout], [], [], 0.1)[0]:
            out += os.read(process.stdout.fileno(), 1 << 16)
    return out


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
def test_rows_reach_a_pipe_as_they_are_measured(tmp_path, json_output):
    script, go_on = tmp_path / "bench.py", tmp_path / "go-on"
    script.write_text(HELD_BACK)
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    environment["PYTHONPATH"] = str(ROOT)  # for the fake timing, from this file
    process = subprocess.Popen([sys.executable, str(script), str(go_on), *(["--json"] if json_output else [])],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)
    try:
        last_row = rb'"impl": "torch-fused"[^}]*"reference": .*\n' if json_output else rb"\bmomentum +torch-fused.*\n"
        before = read_until(process, last_row)
        assert b"adagrad" not in before and b"momentum" in before  # the run is not over
        go_on.touch()
        rest, err = process.communicate(timeout=120)
    finally:
        process.kill()
    out, err = (before + rest).decode(), err.decode()
    assert process.returncode == 0, err
    if json_output:
        assert out == json.dumps(json.loads(out), indent=2) + "\n"  # one document, written a row at a time
        rows = json.loads(out)
        measured = {(row["optimizer"], row["impl"]) for row in rows}
        assert measured >= {("momentum", "adamlab"), ("adagrad", "adamlab")}
    else:
        assert "adagrad" in out and "vs floor: time over an in-place stream" in out
    # stderr is a pipe too: a line for each series, after the estimate, which comes first.
    lines = [line for line in err.splitlines() if line.startswith(("adamlab bench", "["))]
    assert lines[0].startswith("adamlab bench: estimated time about ") and "an estimate" in lines[0]
    assert lines[1].startswith("[1/3] few: momentum (settling the layout: timed, thrown away)")
    assert lines[2].startswith("[2/3] few: momentum:") and lines[3].startswith("[3/3] few: adagrad:")
    assert lines[-1].startswith("adamlab bench: done in ") and "Traceback" not in err


def test_the_estimate_comes_before_any_work(tiny_layouts, fake_timing, capsys, monkeypatch):
    seen_at_start = []
    time_series = bench._time_series

    def first_looks(series, *args):
        if not seen_at_start:
            seen_at_start.append(capsys.readouterr())
        return time_series(series, *args)

    monkeypatch.setattr(bench, "_time_series", first_looks)
    assert main(["bench", "--optimizers", "adam", "--layouts", "few"]) == 0
    out, err = seen_at_start[0]
    assert out == ""  # no row yet
    assert err.splitlines()[0].startswith("adamlab bench: estimated time about ")
    assert "(an estimate, from the bytes each step moves at the memory bandwidth measured just now" in err


def test_quick_says_what_it_leaves_out(tiny_layouts, fake_timing, capsys):
    assert main(["bench", "--quick", "--optimizers", "adamw,lamb", "--layouts", "few"]) == 0
    out, err = capsys.readouterr()
    note = "--quick: smaller layouts, and not timed: adamlab-simple;"
    assert note in err and note in " ".join(out.split())
    assert "adamlab-simple" not in out.split("vs torch:")[0]  # no such row
    assert "lamb pytorch-optimizer" in " ".join(out.split())  # lamb's ratio needs its peer


def test_an_interrupted_run_leaves_valid_json_of_what_was_measured(tiny_layouts, fake_timing, capsys, monkeypatch):
    time_series = bench._time_series

    def interrupted_at_adagrad(series, *args):
        if series.optimizer == "adagrad":
            raise KeyboardInterrupt
        return time_series(series, *args)

    monkeypatch.setattr(bench, "_time_series", interrupted_at_adagrad)
    assert main(["bench", "--optimizers", "momentum,adagrad", "--json"]) == 130
    out, err = capsys.readouterr()
    assert {row["optimizer"] for row in json.loads(out)} == {"floor", "momentum"}
    assert err.splitlines()[-1] == "adamlab bench: interrupted"


def test_a_long_series_is_not_silent(tiny_layouts, capsys, monkeypatch):
    """Off a screen, a series that runs past QUIET_AT_MOST_S without a line gets one, whatever
    holds it up: here a step that does not return until that line has been printed."""
    monkeypatch.setattr(command, "QUIET_AT_MOST_S", 0.05)
    said, say = [], command._say
    monkeypatch.setattr(command, "_say", lambda console, text: said.append(text) or say(console, text))

    def a_step_that_waits_to_be_reported(series, params, repeats, synchronize, on_round):
        on_round(1, bench.WARMUP + repeats)
        deadline = time.monotonic() + 60
        while not any("rounds done" in text for text in said) and time.monotonic() < deadline:
            time.sleep(0.01)
        return fake_time_series(series, params, repeats, synchronize, on_round)

    monkeypatch.setattr(bench, "_time_series", a_step_that_waits_to_be_reported)
    assert main(["bench", "--optimizers", "momentum", "--layouts", "few", "--json"]) == 0
    err = capsys.readouterr().err
    assert f"    few: momentum: 1 of {bench.WARMUP + 10} rounds done, " in err


def test_on_a_terminal_progress_is_a_bar_with_the_time_left():
    screen = io.StringIO()
    series_list = bench.plan(["adam", "lion"], only_layouts=["1000-small"])
    terminal = Console(file=screen, force_terminal=True, width=120)
    with command._Progress(terminal, series_list, [1.0, 2.0, 3.0], rounds=3) as progress:
        for series in series_list:
            progress.series(series)
            for done in range(1, 4):
                progress.round(done, 3)
        assert progress.bar.tasks[0].completed == pytest.approx(6.0)
    assert "1000-small: lion" in screen.getvalue() and "left: about" in screen.getvalue()


def test_each_table_says_what_its_ratios_divide_by(tiny_layouts, fake_timing, capsys):
    assert main(["bench", "--optimizers", "adamw,adamw8bit,rmsprop,lion", "--layouts", "few"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the notes wrap at the table's width
    assert ("vs floor: time over an in-place stream that reads 4 and writes 3 float32 arrays of the layout's "
            "size, timed in the same turns: the memory-bandwidth limit of a 28-byte-per-parameter step") in out
    assert "vs torch: time over torch.optim's fused step of the same optimizer" in out
    # 8-bit AdamW is measured against torch's float32 AdamW: its rows and the note say so.
    for impl in ("torch-single", "torch-foreach", "torch-fused"):
        assert f"adamw8bit {impl} (float32 AdamW)" in out
    assert "adamw8bit: torch-fused (float32 AdamW)" in out
    assert "torch's fastest, as torch has no fused one" in out and "lion-pytorch, as torch.optim has no lion" in out
    assert "GB/s: the bytes a step must move over its time (28 a parameter for adamw; 16 a parameter for " \
           "adamw8bit; 20 a parameter for rmsprop, lion)" in out


def test_the_8bit_rows_name_torchs_float32_adamw_in_json_too(tiny_layouts, fake_timing, capsys):
    assert main(["bench", "--optimizers", "adamw8bit", "--layouts", "many", "--json"]) == 0
    rows = {row["impl"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["torch-fused"]["ratio_vs_torch_fused"] == 1.0
    assert {row["reference"] for impl, row in rows.items() if impl != "stream"} == {"torch-fused (float32 AdamW)"}
    assert bench.label("adamw8bit", "torch-single") == "torch-single (float32 AdamW)"
    assert bench.label("adamw", "torch-fused") == "torch-fused" and bench.label("adamw8bit", "adamlab") == "adamlab"


def test_a_progress_bar_on_a_screen_leaves_stdout_to_the_rows(tiny_layouts, fake_timing, capsys, monkeypatch):
    """With stderr a screen (forced here) and stdout a pipe, the bar must not take stdout's rows."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("TTY_INTERACTIVE", raising=False)
    assert main(["bench", "--optimizers", "adamw,lion", "--json"]) == 0
    out, err = capsys.readouterr()
    assert {row["optimizer"] for row in json.loads(out)} == {"floor", "adamw", "lion"}
    assert "[1/" not in err  # the bar, not the lines for a log


def test_without_the_floors_kernels_one_line_and_status_2(capsys, monkeypatch):
    def unavailable():
        raise kernels.KernelsUnavailable("no C compiler found (set CC, or install gcc)\nmore detail")

    monkeypatch.setattr(kernels, "library", unavailable)
    assert main(["bench", "--quick"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == ("adamlab bench: error: --device cpu: the memory floor needs adamlab's fused CPU "
                                 "kernels, and no C compiler found (set CC, or install gcc)\n")


def test_durations_read_as_a_person_would_say_them():
    assert [command.duration(s) for s in (0.2, 42, 99, 100, 3000, 7200)] == ["1 s", "42 s", "99 s", "2 min",
                                                                             "50 min", "2.0 h"]
