"""``adamlab trace`` as a person runs it."""

import json
import subprocess
import sys

import pytest

from adamlab.cli import main
from adamlab.registry import OPTIMIZERS


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_default_trace_is_the_worked_example(capsys):
    status, out, err = run(capsys, "trace")
    assert status == 0 and err == ""
    for header in ("m_hat", "v_hat", "1-beta1^t", "1-beta2^t", "update", "theta"):
        assert header in out
    assert "0.999 " in out and "0.998043" in out


def test_json_has_one_object_per_step_with_the_standard_keys(capsys):
    status, out, _ = run(capsys, "trace", "--json")
    rows = json.loads(out)
    assert status == 0 and len(rows) == 4
    for key in ("step", "grad", "m", "v", "m_hat", "v_hat", "update", "param"):
        assert key in rows[0]
    assert rows[0]["param"] == pytest.approx(0.999, abs=1e-10)
    assert rows[1]["param"] == pytest.approx(0.99804, abs=5e-6)


def test_json_has_nulls_where_the_optimizer_lacks_a_quantity(capsys):
    _, out, _ = run(capsys, "trace", "--optimizer", "sgd", "--grads", "1,2", "--lr", "0.1", "--json")
    rows = json.loads(out)
    assert rows[0]["m"] is None and rows[0]["v_hat"] is None
    assert [row["param"] for row in rows] == pytest.approx([0.9, 0.7])


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_traces(capsys, optimizer):
    status, out, err = run(capsys, "trace", "--optimizer", optimizer, "--grads", "0.5,-0.2,0.1")
    assert status == 0 and err == "" and "theta" in out


def test_options_reach_the_maths(capsys):
    _, out, _ = run(capsys, "trace", "--theta", "2", "--grads", "0.5", "--lr", "0.1", "--beta1", "0.5",
                    "--beta2", "0.9", "--eps", "0", "--weight-decay", "0.5", "--optimizer", "adamw", "--json")
    row = json.loads(out)[0]
    assert row["decay"] == pytest.approx(0.1 * 0.5 * 2)
    assert row["param"] == pytest.approx(2 - 0.1 - 0.1)
    assert row["bias_correction1"] == pytest.approx(0.5) and row["bias_correction2"] == pytest.approx(0.1)


def strict_json(text: str):
    """``text`` parsed as JSON proper, which has no NaN or Infinity (Python's json takes them)."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))


def test_a_diverged_trace_says_so_in_one_line(capsys):
    status, out, err = run(capsys, "trace", "--lr", "1e308")
    assert status == 3 and "-inf" in out  # 3: diverged, as adamlab train
    assert err == "adamlab trace: diverged at step 2: theta is -inf (beyond float64's range)\n"
    status, out, err = run(capsys, "trace", "--lr", "1e308", "--json")
    rows = strict_json(out)
    assert status == 3 and rows[0]["param"] == pytest.approx(-1e308, rel=1e-7) and rows[1]["param"] is None
    assert err == "adamlab trace: diverged at step 2: theta is -inf (beyond float64's range)\n"


@pytest.mark.parametrize("argv, line", [
    (["--grads", "1e308,1e308"], "diverged at step 1: v is inf (beyond float64's range)"),
    (["--optimizer", "adagrad", "--grads", "1e308", "--theta", "1e308", "--lr", "1e308"],
     "diverged at step 1: update is nan (not a number)"),
    (["--optimizer", "adafactor", "--theta", "1e308"], "diverged at step 1: update is inf (beyond float64's range)"),
    (["--optimizer", "lion", "--weight-decay", "1e308", "--json"],
     "diverged at step 2: theta is inf (beyond float64's range)"),
])
def test_overflows_are_one_line_not_warnings(capsys, argv, line):
    status, out, err = run(capsys, "trace", *argv)
    assert status == 3 and err == f"adamlab trace: {line}\n"  # and no numpy overflow warnings
    if "--json" in argv:
        strict_json(out)


def test_bias_table(capsys):
    status, out, _ = run(capsys, "trace", "--bias-table")
    assert status == 0 and "10.0000" in out and "1000.0000" in out
    _, out, _ = run(capsys, "trace", "--bias-table", "--json")
    rows = json.loads(out)
    assert [row["step"] for row in rows] == [1, 5, 10, 50, 100, 1000]
    assert rows[0]["m_multiplier"] == pytest.approx(10) and rows[0]["v_multiplier"] == pytest.approx(1000)


USAGE_ERRORS = {
    "negative lr": (["trace", "--lr", "-1"], "--lr must be >= 0, got -1.0"),
    "beta out of range": (["trace", "--beta1", "1.5"], "--beta1 must be in [0, 1), got 1.5"),
    # the flag typed, not the argument it sets (rmsprop's alpha, momentum's factor, adafactor's eps2)
    "rmsprop alpha": (["trace", "--optimizer", "rmsprop", "--beta2", "1.5"],
                      "error: --beta2 must be in [0, 1], got 1.5"),
    "momentum factor": (["trace", "--optimizer", "momentum", "--beta1", "-1"], "error: --beta1 must be >= 0, got -1.0"),
    "adafactor eps2": (["trace", "--optimizer", "adafactor", "--eps", "-1"], "error: --eps must be >= 0, got -1.0"),
    "infinite theta": (["trace", "--theta", "inf"], "grads and theta must be finite numbers"),
    "not numbers": (["trace", "--grads", "1,x"], "expected comma-separated numbers"),
    "empty grads": (["trace", "--grads", ""], "expected comma-separated numbers"),
    "infinite grad": (["trace", "--grads", "1,inf"], "expected finite numbers"),
    "knob that does not apply": (["trace", "--optimizer", "sgd", "--beta1", "0.5"], "beta1 does not apply to sgd"),
    "unknown optimizer": (["trace", "--optimizer", "nope"], "invalid choice: 'nope'"),
    "bad theta": (["trace", "--theta", "abc"], "argument --theta: invalid float value"),
    "unknown option": (["trace", "--foo"], "unrecognized arguments: --foo"),
    "no command": ([], "the following arguments are required: COMMAND"),
}


@pytest.mark.parametrize("argv, message", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors_print_one_line_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        status = main(argv)
        raise SystemExit(status)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert out == "" and err.count("\n") == 1 and message in err and err.startswith("adamlab")


def test_the_installed_command_fails_cleanly():
    result = subprocess.run([sys.executable, "-m", "adamlab", "trace", "--eps", "-1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "adamlab trace: error: --eps must be >= 0, got -1.0\n"
    result = subprocess.run([sys.executable, "-m", "adamlab", "trace", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and len(json.loads(result.stdout)) == 4
