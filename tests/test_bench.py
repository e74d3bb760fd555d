"""``adamlab bench``: what it measures and how it reports, on layouts small enough for a test."""

import json
import math

import time

import pytest
import torch

from adamlab import bench, registry
from adamlab.cli import main


@pytest.fixture
def tiny_layouts(monkeypatch):
    monkeypatch.setattr(bench, "layouts", lambda quick=False: {"few": [(300,)] * 3, "many": [(20,)] * 40})


def test_every_implementation_is_timed_and_reported_as_ratios(tiny_layouts, capsys):
    assert main(["bench", "--optimizers", "adamw,rmsprop", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    keys = {"optimizer", "impl", "layout", "params", "ms_per_step", "ratio_vs_torch_fused", "ratio_vs_floor",
            "device", "gb_per_s", "reference"}
    assert all(set(result) == keys for result in results)
    assert all(result["device"] == "cpu" for result in results)
    seen = {(r["layout"], r["optimizer"], r["impl"]) for r in results}
    for layout in ("few", "many"):
        assert (layout, "floor", "stream") in seen
        for impl in ("adamlab", "adamlab-simple", "torch-single", "torch-foreach", "torch-fused"):
            assert (layout, "adamw", impl) in seen
        assert (layout, "rmsprop", "torch-fused") not in seen  # torch has no fused RMSprop
    by_key = {(r["layout"], r["optimizer"], r["impl"]): r for r in results}
    assert by_key[("few", "adamw", "torch-fused")]["ratio_vs_torch_fused"] == 1.0
    assert by_key[("few", "adamw", "adamlab")]["reference"] == "torch-fused"
    fastest_torch = min(by_key[("few", "rmsprop", impl)]["ms_per_step"] for impl in ("torch-single", "torch-foreach"))
    rmsprop = by_key[("few", "rmsprop", "adamlab")]
    assert rmsprop["ratio_vs_torch_fused"] == pytest.approx(rmsprop["ms_per_step"] / fastest_torch)
    assert rmsprop["reference"] in ("torch-single", "torch-foreach")
    floor = by_key[("many", "floor", "stream")]["ms_per_step"]
    adamw = by_key[("many", "adamw", "adamlab")]
    assert adamw["params"] == 800 and adamw["ratio_vs_floor"] == pytest.approx(adamw["ms_per_step"] / floor)
    # Adam moves 28 bytes a parameter, SGD with momentum 20.
    assert adamw["gb_per_s"] == pytest.approx(28 * 800 / (adamw["ms_per_step"] * 1e-3) / 1e9)


def test_an_optimizer_torch_lacks_is_measured_against_its_peer(tiny_layouts, capsys):
    assert main(["bench", "--optimizers", "lion", "--layouts", "few", "--json"]) == 0
    results = {r["impl"]: r for r in json.loads(capsys.readouterr().out) if r["optimizer"] == "lion"}
    assert set(results) == {"adamlab", "adamlab-simple", "lion-pytorch"}  # the test extras install it
    assert results["lion-pytorch"]["ratio_vs_torch_fused"] == 1.0
    assert results["adamlab"]["ratio_vs_torch_fused"] == pytest.approx(
        results["adamlab"]["ms_per_step"] / results["lion-pytorch"]["ms_per_step"])
    assert results["adamlab"]["reference"] == "lion-pytorch"
    assert bench.reference({"adamlab": 1.0}) is None


def test_the_table(tiny_layouts, capsys):
    assert main(["bench", "--optimizers", "momentum"]) == 0
    out = capsys.readouterr().out
    assert "vs torch" in out and "vs floor" in out and "GB/s" in out and "momentum" in out
    assert "few: 900 float32 parameters on cpu" in out


def test_the_floor_off_the_cpu_is_the_same_stream_compiled():
    """Where the C stream cannot run, the floor is torch.compile's pass over the same arrays."""
    rows = [[torch.full((n,), 1.0), torch.full((n,), 2.0), torch.zeros(n), torch.ones(n)] for n in (5, 300)]
    bench._compiled_stream()(rows)
    for p, g, a, b in rows:
        assert torch.equal(p, torch.full_like(p, 3.0)) and torch.equal(a, g) and torch.equal(b, torch.full_like(b, 3.0))


def test_layouts_can_be_chosen(tiny_layouts, capsys):
    assert main(["bench", "--optimizers", "adagrad", "--layouts", "many", "--json"]) == 0
    assert {result["layout"] for result in json.loads(capsys.readouterr().out)} == {"many"}


def test_layouts_match_what_the_issue_names():
    full, quick = bench.layouts(), bench.layouts(quick=True)
    assert [len(shapes) for shapes in full.values()] == [10, 148, 1000]
    counts = [sum(math.prod(shape) for shape in shapes) for shapes in full.values()]
    assert counts[0] == 20_000_000 and 123e6 < counts[1] < 125e6 and counts[2] == 2_000_000
    assert list(quick) == ["10-large", "gpt2-quarter", "1000-small"]
    assert sum(math.prod(shape) for shape in quick["gpt2-quarter"]) < counts[1] / 4


def test_quick_plans_a_bounded_amount_of_work():
    """--quick times every optimizer on three layouts, each contender 10 times in turns, yet
    moves a bounded number of elements: adamlab's simple path and the peers torch's ratios do
    not need are left out. (Sizes are checked, not seconds: tests do not time.)"""
    quick, full = bench.plan(quick=True), bench.plan()
    assert {series.optimizer for series in quick} == set(registry.OPTIMIZERS)
    for series in quick:
        assert "adamlab" in series.contenders and "adamlab-simple" not in series.contenders
        assert bench.reference(dict.fromkeys(series.contenders, 1.0)) is not None  # its ratio has a divisor
        assert not {"bitsandbytes", "heavyball"} & set(series.contenders)

    def work(series_list):  # elements a run passes over: every step of every contender and the floor
        return sum(series.params * (len(series.contenders) + 1) for series in series_list) * (bench.WARMUP + 10)

    # About 1.7e9 elements an optimizer.
    assert work(quick) < 1.75e9 * len(registry.OPTIMIZERS) and work(quick) < work(full) / 6.5
    # At the floor's 48 GB/s of benchmarks/ (two quiet cores), the estimate is about 4.5 s an optimizer.
    assert sum(bench.estimate_seconds(quick, 10, 1 / 48e9)) < 4.7 * len(registry.OPTIMIZERS)


def test_the_estimate_grows_with_the_work():
    few = bench.Series("few", ((1000,),) * 10, "adamw", ("adamlab", "torch-fused"))
    more = bench.Series("few", ((1000,),) * 10, "adamw", ("adamlab", "torch-fused", "adamlab-simple"))
    bigger = bench.Series("few", ((100_000,),) * 10, "adamw", ("adamlab", "torch-fused"))
    one, two, three = (bench.estimate_seconds([series], 10, 1e-10)[0] for series in (few, more, bigger))
    assert 0 < one < two and one < three
    assert bench.estimate_seconds([few], 20, 1e-10)[0] > one
    assert bench.estimate_seconds([few, few], 10, 1e-10) == [one, one]
    assert 0 < bench.calibrate(elements=1000) < 1e-6


def test_rows_are_handed_on_as_each_series_ends(monkeypatch):
    """The run reports each series' rows before it starts the next: nothing waits for the end."""
    events = []
    monkeypatch.setattr(bench, "_time_series", lambda series, params, repeats, synchronize, on_round: (
        events.append(("timed", series.optimizer, series.settling)) or {
            "floor": 1.0, **{impl: 2.0 for impl in series.contenders}}))
    series_list = [
        bench.Series("few", ((4,),), "adam", ("adamlab", "torch-fused"), settling=True),
        bench.Series("few", ((4,),), "adam", ("adamlab", "torch-fused")),
        bench.Series("few", ((4,),), "lion", ("adamlab", "lion-pytorch")),
        bench.Series("many", ((2,),) * 3, "adam", ("adamlab",), settling=True),
        bench.Series("many", ((2,),) * 3, "adam", ("adamlab",)),
    ]
    results = bench.run(series_list, on_series=lambda series: events.append(("started", series.optimizer)),
                        on_rows=lambda series, rows: events.append(("rows", [(r.optimizer, r.impl) for r in rows])))
    assert events == [
        ("started", "adam"), ("timed", "adam", True),
        ("started", "adam"), ("timed", "adam", False),
        ("rows", [("floor", "stream"), ("adam", "adamlab"), ("adam", "torch-fused")]),
        ("started", "lion"), ("timed", "lion", False), ("rows", [("lion", "adamlab"), ("lion", "lion-pytorch")]),
        ("started", "adam"), ("timed", "adam", True),
        ("started", "adam"), ("timed", "adam", False), ("rows", [("floor", "stream"), ("adam", "adamlab")]),
    ]
    assert len(results) == 7 and results[1].ratio_vs_torch_fused == 1.0 and results[1].ratio_vs_floor == 2.0
    assert results[-1].reference is None and results[-1].params == 6


def test_every_round_of_turns_is_reported():
    rounds = []
    medians = bench.interleaved_medians({"a": lambda: None, "b": lambda: None}, repeats=10,
                                        on_round=lambda done, total: rounds.append((done, total)))
    assert set(medians) == {"a", "b"} and rounds == [(done, bench.WARMUP + 10) for done in range(1, 14)]


def test_what_runs_before_a_step_is_not_timed():
    events = []
    medians = bench.interleaved_medians({"a": lambda: events.append("a"), "b": lambda: events.append("b")},
                                        repeats=10, before={"a": lambda: (events.append("before a"), time.sleep(0.02))})
    assert events[:3] == ["before a", "a", "b"] and events.count("before a") == bench.WARMUP + 10
    assert medians["a"] < 10  # milliseconds: the 20 ms before each turn is not in it


def test_each_step_is_timed_with_new_gradients_freshly_written(monkeypatch):
    """As a training loop's backward gives them: the same tensors every step would not cost a
    step the work of taking new ones."""
    seen = []
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self: seen.append(
        [(id(param.grad), param.grad.data_ptr(), param.grad.sum().item()) for group in self.param_groups
         for param in group["params"]]))
    series = bench.Series("tiny", ((3,), (4,)), "adam", ("torch-single",))
    params = [torch.nn.Parameter(torch.ones(shape)) for shape in series.shapes]
    for param in params:
        param.grad = torch.full(param.shape, 0.5)
    bench._time_series(series, params, repeats=10, synchronize=lambda: None, on_round=lambda done, rounds: None)
    assert len(seen) == bench.WARMUP + 10
    assert all(sums == [1.5, 2.0] for sums in ([total for _, _, total in step] for step in seen))
    assert all(step[0][0] != later[0][0] for step, later in zip(seen, seen[1:]))  # new tensors every step
    assert all(grad_pointer != params[0].grad.data_ptr() for (_, grad_pointer, _), *_ in seen)  # not the originals


@pytest.mark.parametrize("argv, message", [
    (["--optimizers", "adamw,lion9"], "--optimizers: unknown lion9"),
    (["--repeats", "3"], "--repeats must be >= 10"),
    (["--device", "nowhere"], "--device nowhere is not usable here"),
    (["--layouts", "10-large,huge"], "--layouts: unknown huge; choose from 10-large, gpt2-small, 1000-small"),
    (["--quick", "--layouts", "gpt2-small"], "--layouts: unknown gpt2-small; choose from 10-large, gpt2-quarter"),
])
def test_bad_options(capsys, argv, message):
    assert main(["bench", *argv]) == 2
    assert message in capsys.readouterr().err



def test_the_bytes_a_step_moves_are_the_state_it_keeps():
    """Parameter and gradient read, parameter written (12 bytes), and the state, as adamlab
    memory measures it, read and written: the arrays of each step counted by hand."""
    assert bench.bytes_per_parameter("adam") == 4 * 7  # reads p, g, m, v; writes p, m, v
    assert bench.bytes_per_parameter("momentum") == 4 * 5  # reads p, g, b; writes p, b
    assert bench.bytes_per_parameter("amsgrad") == 4 * 9  # and the largest v so far
    assert bench.bytes_per_parameter("sgd") == 4 * 3
    assert bench.bytes_per_parameter("adamw8bit") == 4 * 3 + 1 * 4  # a byte of code each for m and v
    assert bench.bytes_per_parameter("adafactor") == 4 * 3  # a matrix's row and column: nothing a parameter
