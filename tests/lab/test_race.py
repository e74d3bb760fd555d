"""``adamlab race``: each problem's numbers against independent computations, and the command."""

import json
import math
import warnings

import numpy as np
import pytest
import torch

import adamlab
from adamlab.cli import main
from adamlab.lab import race
from adamlab.maths import adam, sgd


def reference_path(maths, steps, w, gradient, **settings):
    """Run adamlab's float64 reference maths on one parameter with gradient(w) at each step."""
    state, path = maths.init(np.float64(w)), [w]
    for _ in range(steps):
        step = maths.update(np.float64(gradient(path[-1])), state, np.float64(path[-1]), **settings)
        state = step.state
        path.append(float(step.param))
    return path


def test_the_quadratic_agrees_with_the_reference_maths():
    result = race.run("quadratic")
    sgd_run, momentum_run, adam_run = (result.run_of(name) for name in ("sgd", "momentum", "adam"))
    assert sgd_run.params[-1][0] == pytest.approx(5 * 0.98 ** 8, rel=1e-12)
    expected = reference_path(sgd, 8, 5.0, lambda w: 2 * w, lr=0.01, momentum=0.9)
    np.testing.assert_allclose([p[0] for p in momentum_run.params], expected, rtol=1e-12)
    expected = reference_path(adam, 8, 5.0, lambda w: 2 * w, lr=0.01)
    np.testing.assert_allclose([p[0] for p in adam_run.params], expected, rtol=1e-12)
    # The lesson: momentum far ahead, Adam about 8 x lr from the start.
    assert momentum_run.params[-1][0] < sgd_run.params[-1][0] < adam_run.params[-1][0]
    assert adam_run.extra["moved"] == pytest.approx(8 * 0.01, rel=1e-3)
    assert sgd_run.losses == pytest.approx([p[0] ** 2 for p in sgd_run.params])
    assert any("Adam's step" in note for note in result.notes)


def test_rosenbrock_adam_reaches_the_valley_floor_and_the_start_moves():
    result = race.run("rosenbrock")
    distances = {run.optimizer: run.extra["distance_to_minimum"] for run in result.runs}
    assert distances["adam"] < 0.1 and distances["adam"] == min(distances.values())
    x, y = result.run_of("adam").params[-1]
    assert result.run_of("adam").losses[-1] == pytest.approx((1 - x) ** 2 + 100 * (y - x * x) ** 2)
    moved = race.run("rosenbrock", ["adam"], steps=3, start=(0.5, 0.5))
    assert moved.run_of("adam").params[0] == [0.5, 0.5] and len(moved.run_of("adam").params) == 4


def test_amsgrad_finds_the_optimum_that_adam_misses():
    result = race.run("amsgrad")
    assert result.run_of("adam").params[-1][0] > 0.9  # drifted to the wrong end
    assert result.run_of("amsgrad").params[-1][0] < -0.9
    assert all(-1 <= p[0] <= 1 for run in result.runs for p in run.params)  # projected onto [-1, 1]
    assert result.knobs["beta1"] == 0 and result.knobs["beta2"] == pytest.approx(0.1)


def test_flip_network_data_gradients_and_losses():
    images, targets = race.Flip.data()
    assert images.shape == (16, 4) and len({tuple(row) for row in images.tolist()}) == 16
    for image, target in zip(images, targets):  # the transpose of [a b; c d] is [a c; b d]
        assert torch.equal(target.reshape(2, 2), image.reshape(2, 2).T)
    result = race.run("flip", steps=20)
    momentum = result.run_of("momentum")
    assert len(momentum.params[-1]) == 31
    assert len(momentum.losses) == 21 and len(result.runs) == 6  # and the other learning rates
    # Each seed, trained alone as a plain torch network by the same optimizer, ends where the
    # race's stacked training of all the seeds says it does.
    initial, final = [], []
    for seed in range(race.Flip.seeds):
        torch.manual_seed(seed)
        network = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 4)).double()
        initial.append(torch.nn.functional.mse_loss(network(images), targets).item())
        stepper = adamlab.SGD(network.parameters(), lr=0.05, momentum=0.9)
        for _ in range(20):
            stepper.zero_grad()
            torch.nn.functional.mse_loss(network(images), targets).backward()
            stepper.step()
        final.append(torch.nn.functional.mse_loss(network(images), targets).item())
        if seed == 0:
            weights = torch.cat([p.detach().reshape(-1) for p in network.parameters()]).tolist()
            np.testing.assert_allclose(momentum.params[-1], weights, rtol=1e-10, atol=1e-14)
    assert momentum.losses[0] == pytest.approx(sum(initial) / len(initial), rel=1e-12)
    np.testing.assert_allclose(momentum.extra["final_mse_by_seed"], final, rtol=1e-10)
    assert momentum.extra["layer_ratio"] > 5  # the spread between tensors that Adam normalizes
    assert 0 <= momentum.extra["accuracy"] <= 1


def test_adagrads_effective_rate_dies_and_rmsprops_stays():
    result = race.run("adagrad-decay")
    adagrad, rmsprop = result.run_of("adagrad"), result.run_of("rmsprop")
    # AdaGrad's denominator, recomputed from the path: lr / sqrt(sum of every gradient squared).
    samples = race.PROBLEMS["adagrad-decay"].targets(result.steps)
    grads = np.array([p[0] for p in adagrad.params[:-1]]) - samples.numpy()
    expected = 0.1 / (np.sqrt(np.cumsum(grads ** 2)) + 1e-10)
    np.testing.assert_allclose(adagrad.extra["effective_lr"], expected, rtol=1e-10)
    assert adagrad.extra["effective_lr_at_end"] < adagrad.extra["effective_lr_at_10"] / 10
    assert rmsprop.extra["effective_lr_at_end"] > rmsprop.extra["effective_lr_at_10"] / 2
    assert abs(rmsprop.params[-1][0] + 3) < 0.5 < abs(adagrad.params[-1][0] + 3)


def test_weight_decay_adamw_is_even_and_adam_l2_is_not():
    result = race.run("weight-decay")
    adam_l2, adamw = result.run_of("adam"), result.run_of("adamw")
    assert adamw.extra["decay_per_step_0"] == pytest.approx(adamw.extra["decay_per_step_1"], rel=1e-6)
    assert adamw.extra["decay_per_step_0"] == pytest.approx(0.01 * 0.1, rel=0.05)  # lr x lambda
    assert adam_l2.extra["decay_per_step_0"] < adamw.extra["decay_per_step_0"] / 5  # large gradients
    assert adam_l2.extra["decay_per_step_1"] > adamw.extra["decay_per_step_1"] * 5  # small gradients


def test_moments_are_the_exponential_averages_and_their_corrections():
    result = race.run("moments", steps=30, options={"mean": 2.0, "spread": 0.5}, beta1=0.8)
    run = result.runs[0]
    generator = torch.Generator().manual_seed(0)
    grads = (2.0 + 0.5 * torch.randn(30, generator=generator, dtype=torch.float64)).numpy()
    m = [0.2 * sum(0.8 ** (t - i) * grads[i] for i in range(t + 1)) for t in range(30)]
    np.testing.assert_allclose(run.extra["m"], m, rtol=1e-12)
    np.testing.assert_allclose(run.extra["m_hat"], [m[t] / (1 - 0.8 ** (t + 1)) for t in range(30)], rtol=1e-12)
    assert run.extra["v_hat"][0] == pytest.approx(grads[0] ** 2)
    assert result.truth == {"mean": 2.0, "mean_square": 4.25}
    assert [row[0] for row in result.by_step[1]] == [1, 2, 3, 5, 10, 20]


@pytest.mark.parametrize("problem,arguments,message", [
    ("nope", {}, "unknown problem 'nope'; choose from quadratic"),
    ("quadratic", {"optimizers": ["adamz"]}, "unknown optimizer 'adamz'"),
    ("quadratic", {"steps": 0}, "steps must be a whole number from 1 to 100000, got 0"),
    ("quadratic", {"optimizers": []}, "choose at least one optimizer from sgd, momentum"),
    # a problem's options within their ranges: a spread is not negative, and nothing overflows
    ("moments", {"options": {"spread": -1.0}}, "spread must be a number from 0 to 1e+100, got -1.0"),
    ("moments", {"options": {"spread": 1e308, "mean": 1e308}}, "must be a number from"),
    ("moments", {"options": {"mean": -1e101}}, "mean must be a number from -1e+100 to 1e+100, got -1e+101"),
    ("moments", {"options": {"mean": float("nan")}}, "mean must be a number from -1e+100 to 1e+100, got nan"),
    # a knob is named as it was set, not as the optimizer's argument it sets (alpha, momentum, betas[1])
    ("quadratic", {"optimizers": ["rmsprop"], "beta2": 1.5}, "beta2 must be in [0, 1], got 1.5"),
    ("quadratic", {"optimizers": ["momentum"], "beta1": -1.0}, "beta1 must be >= 0, got -1.0"),
    ("quadratic", {"optimizers": ["adam"], "beta2": -1.0}, "beta2 must be in [0, 1), got -1.0"),
    ("quadratic", {"optimizers": ["lion"], "beta1": 1.0}, "beta1 must be in [0, 1), got 1.0"),
    ("quadratic", {"lrs": {"adam": -1.0}}, "must be a positive number"),
    ("rosenbrock", {"start": (1.0,)}, "2 finite number(s)"),
    ("flip", {"start": (1.0,)}, "takes no start"),
    ("quadratic", {"options": {"mean": 1.0}}, "quadratic has no setting 'mean'"),
    ("adagrad-decay", {"optimizers": ["adam"]}, "adagrad-decay races adagrad, rmsprop, not adam"),
    ("flip", {"optimizers": ["adam", "muon"]}, "flip stacks its seeds' weights into 3-D tensors, which muon"),
    ("quadratic", {"optimizers": ["muon"], "beta1": -1.0}, "beta1 must be >= 0, got -1.0"),  # Muon's momentum, named as set
])
def test_bad_races_are_refused(problem, arguments, message):
    with pytest.raises(ValueError) as error:
        race.run(problem, **arguments)
    assert message in str(error.value)


@pytest.mark.parametrize("problem", race.PROBLEMS)
def test_a_learning_rate_far_too_large_is_a_diverged_run_not_an_error(problem):
    course = race.PROBLEMS[problem]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even an overflow warning
        result = race.run(problem, lrs=dict.fromkeys(course.lrs, 1e300), steps=5)
    json.dumps(result.to_json(), allow_nan=False)  # JSON without NaN or Infinity
    for run in result.runs:
        numbers = [*run.losses, *(value for params in run.params for value in params)]
        assert (run.diverged_at is None) == all(map(math.isfinite, numbers))
        if run.diverged_at is not None:
            assert not math.isfinite(run.losses[run.diverged_at]) or not all(map(math.isfinite, run.params[-1]))
            assert all(map(math.isfinite, run.losses[:run.diverged_at]))
            note = f"{run.label} diverged at step {run.diverged_at}: its loss or parameters left float64's range"
            assert any(text.startswith(note) for text in result.notes)
    # amsgrad clamps w to [-1, 1]; moments' loss is its estimates', whatever w does
    assert any(run.diverged_at is not None for run in result.runs) == (problem not in ("amsgrad", "moments"))


def test_a_race_too_long_is_refused_before_it_runs():
    with pytest.raises(ValueError, match="^steps must be a whole number from 1 to 100000, got 1000000000$"):
        race.plan("quadratic", steps=10 ** 9)
    assert race.plan("quadratic", steps=race.MAX_STEPS).steps == race.MAX_STEPS


@pytest.mark.parametrize("problem, start", [("quadratic", (1e308,)), ("rosenbrock", (1e100, 0.0)),
                                            ("adagrad-decay", (-1e200,)), ("weight-decay", (1.0, 1e200))])
def test_a_start_whose_loss_overflows_is_refused(problem, start):
    with pytest.raises(ValueError, match=f"the loss of {problem} at the start .* is beyond float64's range; "
                                         f"start nearer"):
        race.run(problem, start=start)


# --- the command ------------------------------------------------------------------------------

def test_the_command_prints_a_table_writes_a_picture_and_json(tmp_path, capsys):
    picture = tmp_path / "race.png"
    assert main(["race", "quadratic", "--out", str(picture)]) == 0
    printed = capsys.readouterr().out
    assert "momentum (lr 0.01)" in printed and "2.442" in printed and f"wrote {picture}" in printed
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["race", "rosenbrock", "--optimizers", "adam,sgd", "--lr", "adam=0.02", "--steps", "5",
                 "--start", "0,0", "--out", str(picture), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [run["optimizer"] for run in data["runs"]] == ["adam", "sgd"]
    adam_run = data["runs"][0]
    assert adam_run["lr"] == 0.02 and adam_run["params"][0] == [0.0, 0.0] and len(adam_run["losses"]) == 6
    assert adam_run["final_loss"] == adam_run["losses"][-1] and adam_run["final_params"] == adam_run["params"][-1]
    expected = race.run("rosenbrock", ["adam"], {"adam": 0.02}, 5, (0.0, 0.0)).run_of("adam")
    assert adam_run["losses"] == expected.losses


def test_a_diverged_run_says_so_in_the_table_and_in_valid_json(tmp_path, capsys):
    picture = tmp_path / "race.png"
    assert main(["race", "quadratic", "--lr", "sgd=1e300", "--out", str(picture)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "sgd (lr 1e+300) diverged at step 1: its loss or parameters left float64's range" in out
    assert main(["race", "quadratic", "--lr", "sgd=1e300", "--out", str(picture), "--json"]) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert [run["diverged_at"] for run in data["runs"]] == [1, None, None]
    assert data["runs"][0]["final_loss"] is None and data["runs"][0]["losses"][0] == 25.0


@pytest.mark.parametrize("arguments", [["quadratic", "--lr", "sgd=1e20"], ["flip", "--lr", "sgd=1e5", "--steps", "50"],
                                       ["weight-decay", "--lr", "adam=1e140", "--steps", "50"],
                                       ["rosenbrock", "--lr", "sgd=1e10", "--steps", "30"],
                                       ["adagrad-decay", "--lr", "rmsprop=1e200", "--steps", "50"]])
def test_a_run_whose_numbers_grow_huge_but_finite_still_draws(arguments, tmp_path, capsys):
    # matplotlib's log-scale ticks overflowed (OverflowError) on losses near 1e290: a traceback
    # after the race had run.
    picture = tmp_path / "race.png"
    assert main(["race", *arguments, "--out", str(picture)]) == 0
    assert picture.stat().st_size > 10_000 and "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("problem", ["flip", "adagrad-decay", "amsgrad", "weight-decay", "moments"])
def test_every_problem_draws(problem, tmp_path, capsys):
    picture = tmp_path / f"{problem}.png"
    assert main(["race", problem, "--steps", "12", "--out", str(picture)]) == 0
    assert picture.stat().st_size > 10_000 and "wrote" in capsys.readouterr().out


def test_the_list_names_every_problem(capsys):
    assert main(["race", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(race.PROBLEMS)


@pytest.mark.parametrize("arguments,message", [
    (["race", "nope"], "unknown problem 'nope'; choose from quadratic, rosenbrock"),
    (["race", "quadratic", "--optimizers", "adam,adamz"], "unknown optimizer 'adamz'"),
    (["race", "quadratic", "--steps", "-3"], "must be at least 1"),
    (["race", "quadratic", "--lr", "adam=0"], "a learning rate must be positive"),
    (["race", "rosenbrock", "--start", "1"], "2 finite number(s)"),
    (["race", "rosenbrock", "--start", "1,x"], "expected comma-separated numbers like -1.5,2"),
    (["race", "quadratic", "--beta1", "1.5"], "--beta1 must be"),
    (["race"], "name a problem"),
    (["race", "moments", "--spread", "1e308", "--mean", "1e308"], "mean must be a number from -1e+100 to 1e+100"),
    (["race", "moments", "--spread", "-1"], "error: spread must be a number from 0 to 1e+100, got -1.0"),
    (["race", "moments", "--spread", "1e200"], "error: spread must be a number from 0 to 1e+100, got 1e+200"),
    (["race", "quadratic", "--optimizers", "rmsprop", "--beta2", "1.5"], "error: --beta2 must be in [0, 1], got 1.5"),
    (["race", "quadratic", "--optimizers", "momentum", "--beta1", "-1"], "error: --beta1 must be >= 0, got -1.0"),
    (["race", "quadratic", "--beta2", "-1"], "error: --beta2 must be in [0, 1), got -1.0"),
    (["race", "quadratic", "--steps", "100001"], "steps must be a whole number from 1 to 100000, got 100001"),
    (["race", "quadratic", "--start", "1e308"], "the loss of quadratic at the start (1e+308,) is beyond"),
    (["race", "quadratic", "--optimizers", ","], "unknown optimizer"),
])
def test_bad_input_is_one_line_and_exit_2(arguments, message, capsys, tmp_path):
    try:
        status = main([*arguments, "--out", str(tmp_path / "x.png")])
    except SystemExit as exit:  # argparse's own usage errors
        status = exit.code
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_flip_trains_each_seed_alone_where_an_update_reaches_across_a_tensor():
    """LAMB's trust ratio is over a whole tensor: stacked seeds would share it, so each trains alone."""
    result = race.run("flip", ["lamb"], steps=5)
    images, targets = race.Flip.data()
    for seed, mse in enumerate(result.run_of("lamb").extra["final_mse_by_seed"]):
        network = race.Flip.network(seed)
        stepper = adamlab.LAMB(network.parameters(), lr=result.run_of("lamb").lr)
        for _ in range(5):
            stepper.zero_grad()
            torch.nn.functional.mse_loss(network(images), targets).backward()
            stepper.step()
        assert mse == pytest.approx(torch.nn.functional.mse_loss(network(images), targets).item(), rel=1e-12)


@pytest.mark.parametrize("problem, optimizers, steps", [
    ("quadratic", ["sgd", "adam"], 8), ("flip", ["adam"], 20), ("flip", ["lamb"], 20),  # LAMB: each seed alone
    ("moments", ["adam", "amsgrad"], 50), ("adagrad-decay", None, 40), ("weight-decay", None, 30),
    ("amsgrad", None, 30), ("saddle", ["adam", "lion"], 25)])
def test_a_race_counts_its_steps_as_it_goes(problem, optimizers, steps):
    plan = race.plan(problem, optimizers, steps=steps)
    progress = plan.progress()
    assert progress.total == plan.course.runs(plan.optimizers) * steps and progress.share == 0
    plan.run(progress=progress)  # counted by the problem as it steps
    assert progress.done == pytest.approx(progress.total) and progress.share == pytest.approx(1.0)
