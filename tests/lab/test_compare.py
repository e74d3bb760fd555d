"""adamlab compare: the sweep, the summary at each optimizer's best learning rate, the workloads
as they run, and the command's table, JSON, plot and errors."""

import json
import math

import pytest

from adamlab.cli import main
from adamlab.files import _is_adamlab_png
from adamlab.lab import compare


def result(lr, seed, losses, diverged_at=None):
    steps = [0, 10, 20, 30][:len(losses)]
    return compare.Result("flip", "adam", lr, seed, steps, losses, [0.0, 0.1, 0.2, 0.3][:len(losses)], diverged_at)


def test_the_summary_keeps_the_best_learning_rate_and_times_the_target_there():
    results = [result(0.01, 0, [0.9, 0.5, 0.3, 0.2]), result(0.01, 1, [0.9, 0.4, 0.3, 0.3]),
               result(0.03, 0, [0.9, 0.2, 0.09, 0.05]), result(0.03, 1, [0.9, 0.3, 0.2, 0.07]),
               result(0.09, 0, [0.9, math.nan], diverged_at=10), result(0.09, 1, [0.9, 0.01, 0.01, 0.01])]
    (summary,) = compare.summarise(results)
    assert summary.best_lr == 0.03 and summary.final_val_loss == pytest.approx(0.06)
    assert summary.final_val_loss_std == pytest.approx(0.01)
    # flip's target is 0.1: seed 0 reached it at step 20, seed 1 at 30
    assert (summary.reached, summary.seeds, summary.steps_to_target) == (2, 2, 25)
    assert summary.seconds_to_target == pytest.approx(0.25)
    assert summary.lrs == {"0.01": pytest.approx(0.25), "0.03": pytest.approx(0.06), "0.09": math.inf}
    assert json.loads(json.dumps(summary.as_dict()))["lrs"]["0.09"] is None  # a diverged seed: no number
    assert summary.state_bytes == 2 * 4 * 31 + 4 * 4  # Adam's m and v of the 31 parameters, a step per tensor
    assert not summary.at_edge and json.loads(json.dumps(summary.as_dict()))["at_edge"] is False
    (edge,) = compare.summarise(results[:4])  # 0.03, the largest of 0.01 and 0.03
    assert edge.best_lr == 0.03 and edge.at_edge


def test_each_family_sweeps_around_its_own_learning_rate():
    digits = compare.WORKLOADS["digits"]
    assert digits.lrs("adam") == pytest.approx([1e-3, 3e-3, 9e-3, 2.7e-2])
    assert digits.lrs("lion") == pytest.approx([1e-4, 3e-4, 9e-4, 2.7e-3])
    assert digits.lrs("prodigy") == pytest.approx([1 / 3, 1, 3, 9])  # a multiplier of the step size it finds


@pytest.mark.parametrize("name", ["digits", "flip", "names"])
def test_each_workload_learns_and_reports_its_validation_loss(name):
    workload = compare.WORKLOADS[name]
    run = workload.run("adamw", workload.adam_lr, 0, 20)
    assert run.steps[0] == 0 and run.steps[-1] == 20 and len(run.steps) == len(run.val_loss) == len(run.seconds)
    assert run.val_loss[-1] < run.val_loss[0] and run.diverged_at is None
    assert run.seconds == sorted(run.seconds) and run.seconds[-1] > 0


def test_a_diverging_run_stops_and_says_where():
    run = compare.WORKLOADS["digits"].run("sgd", 1e10, 0, 50)
    assert run.diverged_at is not None and run.final == math.inf and run.steps == [0]


def test_the_command_prints_json_and_draws_the_plot(tmp_path, capsys):
    plot = tmp_path / "compare.png"
    assert main(["compare", "--workloads", "flip,digits", "--optimizers", "adam,sgd", "--quick", "--json",
                 "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(s["workload"], s["optimizer"]) for s in out["summaries"]] == [
        ("flip", "adam"), ("flip", "sgd"), ("digits", "adam"), ("digits", "sgd")]
    assert len(out["runs"]) == 2 * 2 * len(compare.SWEEP)  # two workloads, two optimizers, every learning rate, one seed
    assert out["workloads"]["digits"]["steps"] == 150 and _is_adamlab_png(plot)


def test_the_table_names_every_optimizer(capsys):
    assert main(["compare", "--workloads", "flip", "--optimizers", "adam,lion", "--quick", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "flip: the lessons'" in out and "adam " in out and "lion " in out and "reached" in out


@pytest.mark.parametrize("arguments, message", [
    (["--workloads", "mnist"], "--workloads: unknown mnist; choose from names, digits, flip"),
    (["--optimizers", "adam,sophia"], "--optimizers: unknown sophia"),
    (["--seeds", "0"], "--seeds must be a whole number from 1 to 20, got 0"),
])
def test_bad_arguments_are_one_line_and_exit_2(arguments, message, capsys):
    assert main(["compare", "--no-plot", *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_a_plot_path_holding_someone_elses_file_is_refused_before_any_run(tmp_path, capsys):
    theirs = tmp_path / "notes.png"
    theirs.write_bytes(b"not adamlab's")
    assert main(["compare", "--workloads", "flip", "--optimizers", "adam", "--quick", "--plot", str(theirs)]) == 2
    assert theirs.read_bytes() == b"not adamlab's" and "--plot" in capsys.readouterr().err
