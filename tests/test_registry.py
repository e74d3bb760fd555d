"""The registry: every optimizer adamlab has, once; each entry builds, steps and agrees with its
maths; and every command offers exactly the registry's optimizers."""

import argparse
import json

import pytest
import torch

import adamlab
from adamlab import bench, memory, optim, registry
from adamlab.cli import build_parser, main
from adamlab.lab import explore, race, training

from .cli.test_bench_command import fake_time_series

NAMES = list(registry.OPTIMIZERS)
NEW = ["nadam", "radam", "adamax"]


# --- the table -----------------------------------------------------------------------------------

def test_every_optimizer_adamlab_has_is_there_once():
    assert all(entry.name == name for name, entry in registry.OPTIMIZERS.items())
    made = [(entry.make, tuple(sorted(entry.settings.items()))) for entry in registry.OPTIMIZERS.values()]
    assert len(set(made)) == len(made)  # no optimizer under two names ("momentum", "sgd-momentum")
    # Hybrid holds other optimizers
    classes = {getattr(optim, name) for name in optim.__all__} - {optim.Optimizer, optim.StepRefused, optim.Hybrid}
    assert {entry.make for entry in registry.OPTIMIZERS.values()} == classes
    assert all(entry.maths.__name__.startswith("adamlab.maths.") for entry in registry.OPTIMIZERS.values())
    assert len({entry.summary for entry in registry.OPTIMIZERS.values()}) == len(NAMES)
    assert all(set(entry.knobs) <= set(registry.KNOBS) for entry in registry.OPTIMIZERS.values())


@pytest.mark.parametrize("name", NAMES)
def test_every_entry_builds_and_steps_a_small_model(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    entry = registry.get(name)
    optimizer = entry.build(model.parameters(), lr=1e-2)
    if entry.matrices_only:  # Muon: the weights, AdamW the biases
        assert isinstance(optimizer, optim.Hybrid) and [type(each) for each in optimizer.optimizers] == \
            [entry.make, optim.AdamW]
        assert [param.ndim for param in optimizer.optimizers[0].param_groups[0]["params"]] == [2, 2]
    else:
        assert isinstance(optimizer, entry.make)
    before = [param.detach().clone() for param in model.parameters()]
    inputs, targets = torch.randn(16, 5), torch.randn(16, 3)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()
    assert all(not torch.equal(old, new) and new.isfinite().all() for old, new in zip(before, model.parameters()))


def test_each_entry_builds_for_a_model_as_it_is_meant_to_train_one():
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
                                torch.nn.Linear(8, 3))
    muon = registry.get("muon").for_model(model, {"weight_decay": 0.0}, lr=0.02)
    hidden, rest = muon.optimizers  # the hidden layers' weights; the head, the biases: AdamW's, at the same lr
    assert [param.shape for param in hidden.param_groups[0]["params"]] == [(8, 5), (8, 8)]
    assert isinstance(rest, optim.AdamW) and len(rest.param_groups[0]["params"]) == 4
    assert {group["lr"] for group in muon.param_groups} == {0.02} and rest.param_groups[0]["weight_decay"] == 0.0
    mini = registry.get("adammini").for_model(model)
    assert [group["name"] for group in mini.param_groups] == [name for name, _ in model.named_parameters()]
    assert [group["blocks"] for group in mini.param_groups][:2] == ["tensor", "element"]  # "0.weight", "0.bias"
    assert registry.get("adam").for_model(model).param_groups[0]["params"] == list(model.parameters())


#: Not the defaults: a knob mapped to the wrong argument moves the class and the maths apart.
KNOBS = {"beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.1}
#: The 8-bit maths keeps m and v through a float32 scale each step, where a one-element tensor,
#: too small to quantize, keeps them whole; NAdam's class keeps its product of momentum
#: coefficients, LaProp's its average of the learning rates and Schedule-Free's its weights' sum
#: and lr_max, as float32 numbers. Muon's class runs Newton-Schulz in bfloat16, as torch.optim's.
CLOSE = {"adam8bit": 1e-4, "adamw8bit": 1e-4, "nadam": 1e-9, "laprop": 1e-9, "schedulefree": 1e-9, "muon": 1e-4}


@pytest.mark.parametrize("knobs", [{}, KNOBS], ids=["defaults", "knobs"])
@pytest.mark.parametrize("name", NAMES)
def test_the_maths_takes_the_steps_the_class_takes(name, knobs):
    """The entry's two halves agree: its constructor settings and knobs, and its maths settings
    and knobs, step one float64 parameter alike (the trace runs the maths)."""
    from adamlab.lab.trace import trace

    entry = registry.get(name)
    knobs = entry.applicable(knobs)
    grads = (0.5, 0.3, -0.8, 0.6, -0.4, 1.2, 0.1, 0.7)
    shape = (1, 1) if entry.matrix_maths else ()  # as the trace steps it
    param = torch.nn.Parameter(torch.full(shape, 1.5, dtype=torch.float64))
    optimizer = entry.build([param], knobs, lr=0.01)
    params = []
    for grad in grads:
        param.grad = torch.full(shape, grad, dtype=torch.float64)
        optimizer.step()
        params.append(param.item())
    traced = [row["param"] for row in trace(name, grads, 1.5, lr=0.01, **knobs)]
    assert traced == pytest.approx(params, rel=CLOSE.get(name, 1e-12))


def test_knobs_set_their_arguments_and_errors_name_the_knob():
    assert registry.get("momentum").arguments({"beta1": 0.5}) == {"momentum": 0.5}
    assert registry.get("lion").arguments({"beta2": 0.9}) == {"betas": (0.9, 0.9)}  # beta1 from Lion's default
    assert registry.get("adafactor").arguments({"eps": 1e-4}) == {"eps": (None, 1e-4)}
    assert registry.get("amsgrad").arguments({"beta1": None}) == {"amsgrad": True}
    params = [torch.zeros(2, requires_grad=True)]
    for name, knobs, message in [("rmsprop", {"beta2": 1.5}, r"^beta2 must be in \[0, 1\], got 1.5$"),
                                 ("adam", {"beta1": 1.0}, r"^beta1 must be in \[0, 1\), got 1.0$"),
                                 ("adafactor", {"eps": -1.0}, r"^eps must be >= 0, got -1.0$"),
                                 ("momentum", {"beta1": -1.0}, r"^beta1 must be >= 0, got -1.0$")]:
        with pytest.raises(ValueError, match=message):
            registry.get(name).build(params, knobs)
        with pytest.raises(ValueError, match=message):
            registry.get(name).maths_arguments(knobs)
    with pytest.raises(ValueError, match="^beta1 does not apply to adagrad; it takes eps, weight_decay$"):
        registry.get("adagrad").build(params, {"beta1": 0.9})
    assert registry.get("adagrad").applicable({"beta1": 0.9, "eps": None, "weight_decay": 0.1}) == {"weight_decay": 0.1}
    with pytest.raises(ValueError, match="^unknown knob 'beta3'"):
        registry.get("adam").arguments({"beta3": 0.9})
    with pytest.raises(ValueError, match="^unknown optimizer 'sgd-momentum'; choose from sgd, momentum, adagrad"):
        registry.get("sgd-momentum")


# --- every command offers the registry's optimizers ----------------------------------------------

def option(command: str, flag: str) -> argparse.Action:
    """The argparse action of ``adamlab COMMAND FLAG``."""
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return next(action for action in commands.choices[command]._actions if flag in action.option_strings)


def test_every_command_lists_the_registry():
    torch_ones = list(training.TORCH_OPTIMIZERS)
    assert list(option("train", "--optimizer").choices) == NAMES + torch_ones
    assert option("compare", "--optimizers").default == ",".join(NAMES)
    assert list(option("trace", "--optimizer").choices) == NAMES
    assert option("race", "--optimizers").type(",".join(NAMES)) == NAMES
    assert option("bench", "--optimizers").default == ",".join(NAMES)
    # each where it has something to step: Muon on GPT-2's hidden matrices only
    assert {series.optimizer for series in bench.plan(quick=True)} == set(NAMES)
    assert list(dict.fromkeys(row.optimizer for row in memory.table([(4, 4)]))) == NAMES
    assert [each["name"] for each in explore.problems()["optimizers"]] == NAMES
    assert set(explore.default_lrs("quadratic")) == set(NAMES)
    assert list(explore.problems()["knobs"]) == list(registry.KNOBS)


# --- the new optimizers in every command ----------------------------------------------------------

def test_trace_shows_nadam(capsys):
    assert main(["trace", "--optimizer", "nadam", "--beta1", "0.8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and {"mu", "mu_next", "m_hat", "v_hat"} <= set(rows[0])
    assert main(["trace", "--optimizer", "radam"]) == 0 and "rho_t" in capsys.readouterr().out


def test_race_runs_the_new_ones(tmp_path, capsys):
    assert main(["race", "quadratic", "--optimizers", ",".join(NEW), "--steps", "3", "--beta2", "0.99",
                 "--out", str(tmp_path / "race.png"), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [run["optimizer"] for run in runs] == NEW and all(len(run["losses"]) == 4 for run in runs)
    expected = race.run("quadratic", NEW, steps=3, beta2=0.99)
    assert [run["final_params"] for run in runs] == [run.params[-1] for run in expected.runs]


def test_train_with_radam_and_momentum_as_named(capsys):
    assert main(["train", "--recipe", "microgpt", "--optimizer", "radam", "--steps", "3", "--eval-every", "3",
                 "--json", "--no-plot", "--samples", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["optimizer"] == "radam" and summary["steps"] == 3
    run = training.Training(training.RECIPES["microgpt"].replace(optimizer="momentum", steps=1))
    assert type(run.optimizer) is adamlab.SGD and run.optimizer.param_groups[0]["momentum"] == 0.9


def test_bench_times_the_new_ones(monkeypatch, capsys):
    monkeypatch.setattr(bench, "layouts", lambda quick=False: {"few": [(300,)] * 3})
    monkeypatch.setattr(bench, "_time_series", fake_time_series)  # what is run and printed, not how fast
    assert main(["bench", "--optimizers", ",".join(NEW), "--quick", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(row["optimizer"], row["impl"]) for row in rows} >= {(name, impl) for name in NEW
                                                                 for impl in ("adamlab", "torch-foreach")}
    # each contender of every optimizer builds and steps (the real ones: torch's and adamlab's)
    for name in NAMES:
        for impl, build in bench.implementations(name).items():
            if impl.startswith(("adamlab", "torch-")):
                shape = (3, 3) if registry.get(name).matrices_only else (3,)
                param = torch.nn.Parameter(torch.ones(shape))
                param.grad = torch.ones(shape)
                optimizer = build([param])
                optimizer.step()
                optimizer.step()  # ADOPT's first step only starts its v
                assert not torch.equal(param, torch.ones(3)), (name, impl)


def test_memory_measures_the_new_ones(capsys):
    assert main(["memory", "--model", "names-microgpt", "--json"]) == 0
    rows = {(row["optimizer"], row["precision"]): row for row in json.loads(capsys.readouterr().out)}
    for name in NEW:
        assert rows[(name, "float32")]["state_bytes"] >= 2 * 4 * rows[(name, "float32")]["params"]
