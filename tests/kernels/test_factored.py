"""Kernels of a factored state (Adafactor's), printed from the maths by factored.py: the simple
path's results to the rounding of its sums, the same bits on any number of threads, a kernel that
follows its maths when the maths changes, and the printer's limits said plainly."""

import types
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

import adamlab
from adamlab.kernels import cpu, factored, symbolic
from adamlab.maths import adafactor
from adamlab.maths.ops import mean, sqrt
from adamlab.maths.step import Step

#: Matrices wide and narrow (strips of 64 columns and a part of one), a batch of them, one
#: element, a vector and an empty one.
SHAPES = [(300, 333), (3, 130), (4, 50, 70), (1, 1), (123,), (0,)]
MATRIX = {"step": "tensor", "row_var": "row", "col_var": "column"}
VECTOR = {"step": "tensor", "variance": "element"}


def steps(fused, dtype=torch.float32, threads=None, count=6, **settings):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        generator = torch.Generator().manual_seed(1)
        params = [torch.randn(shape, generator=generator, dtype=dtype).requires_grad_() for shape in SHAPES]
        optimizer = adamlab.Adafactor(params, fused=fused, **settings)
        for _ in range(count):
            for param in params:
                param.grad = torch.randn(param.shape, generator=generator, dtype=dtype)
            for group in optimizer.param_groups:
                group["lr"] *= 0.9
            optimizer.step()
        return params, optimizer
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 2e-6), (torch.float64, 1e-13)], ids=["float32", "float64"])
@pytest.mark.parametrize("settings", [dict(lr=0.05), dict(lr=0.05, weight_decay=0.1, maximize=True, d=1.5)],
                         ids=["defaults", "decay-maximize"])
def test_the_factored_kernel_is_the_simple_path_to_the_rounding_of_its_sums(dtype, tolerance, settings, kernel_calls):
    (fused, first), (simple, second) = steps(None, dtype, **settings), steps(False, dtype, **settings)
    assert kernel_calls == ["adafactor"] * 6
    for a, b in zip(fused, simple):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)
        for key, value in first.state[a].items():
            torch.testing.assert_close(value, second.state[b][key], rtol=tolerance, atol=tolerance)


def test_its_sums_are_the_same_bits_on_any_number_of_threads(kernel_calls):
    one, _ = steps(None, threads=1)
    two, _ = steps(None, threads=2)
    assert kernel_calls == ["adafactor"] * 12
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_the_kernel_is_printed_in_passes_over_rows_with_the_column_means_by_strips():
    hyperparameters = dict(lr=0.01, beta2_decay=-0.8, eps1=1e-30, eps2=1e-3, d=1.0, weight_decay=0.0, beta1=None,
                           maximize=False)
    kernel = cpu.generated(adafactor, hyperparameters, MATRIX, "factored", vectors=VECTOR)
    matrix = kernel.body[kernel.body.index("matrix_step"):]
    # three passes over rows (g^2 and theta^2; u^2; the step), one over strips of columns
    assert matrix.count("for (int64_t r = 0; r < rows; r++) {") == 3
    assert matrix.count("for (int64_t s = 0; s < matrices * strips; s++) {") == 1
    assert "row_values[r * 1 + 0] = " in matrix and "column_values[j * 1 + 0] = " in matrix
    # t^beta2_decay, t^-0.5 and the element count's root for each of the two RMS: once per tensor,
    # before the loops, never per element
    assert matrix.count("pow(") == 4
    assert all("pow(" not in line for line in matrix.splitlines() if line.startswith(" " * 8))


def test_a_changed_update_changes_the_fused_step(monkeypatch, kernel_calls):
    def halved(grad, state, param, **hyperparameters):  # Adafactor taking half the step
        new = original(grad, state, param, **hyperparameters)
        return new._replace(param=param + (new.param - param) / 2)

    def one_step(fused):
        params = [torch.ones(40, 30).requires_grad_(), torch.ones(7).requires_grad_()]
        for param in params:
            param.grad = torch.linspace(-1, 1, param.numel()).reshape(param.shape)
        adamlab.Adafactor(params, lr=0.01, fused=fused).step()
        return params

    plain = one_step(None)
    original = adafactor.update
    monkeypatch.setattr(adafactor, "update", halved)
    changed, simple = one_step(None), one_step(False)
    assert kernel_calls == ["adafactor", "adafactor"]
    for a, b, c in zip(changed, simple, plain):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a - 1, (c - 1) / 2)


# --- any factored update, not Adafactor's alone -------------------------------------------------

class _State(NamedTuple):
    step: Any
    row: Any
    column: Any
    flat: Any


def _row_scaled(grad, state, param, *, lr=0.1):
    """A made-up factored rule: the gradient over its row's RMS, times its column's mean over
    the matrix's mean of column means (a matrix from columns, where Adafactor's is from rows)."""
    t = state.step + 1
    if state.flat is None:
        row = mean(grad * grad, -1)
        column = mean(grad, -2)
        scale = column / (mean(column, -1) + 1.0)
        new = param - lr * (grad / sqrt(row + 1e-8)) * scale / t
        return Step(new, _State(t, row, column, None), {})
    return Step(param - lr * grad, _State(t, None, None, state.flat), {})


def _module(name, update):
    """A maths module of ``update`` over :class:`_State`."""
    module = types.ModuleType(name)
    module.State, module.update = _State, update
    return module


def _kernel_and_maths(rule, shapes=((2, 9, 70), (5,)), lr=0.25):
    """The factored kernel of ``rule`` run in float64 on fresh tensors of ``shapes``, and the
    rule itself on the same numbers: [(kernel's row, maths' step)] per tensor."""
    kernel = cpu.generated(rule, {"lr": lr}, {"step": "tensor", "row": "row", "column": "column"}, "factored",
                           vectors={"step": "tensor", "flat": "element"})
    generator = np.random.default_rng(0)
    rows, expected = [], []
    for shape in shapes:
        param, grad = generator.standard_normal(shape), generator.standard_normal(shape)
        matrix = len(shape) > 1
        state = _State(3.0, generator.random(shape[:-1] + (1,)) if matrix else None,
                       generator.random(shape[:-2] + (1, shape[-1])) if matrix else None,
                       None if matrix else generator.random(shape))
        expected.append(rule.update(grad, state, param, lr=lr))
        first = torch.tensor(state.row if matrix else state.flat)
        second = torch.tensor(state.column) if matrix else first
        rows.append([torch.tensor(param), torch.tensor(grad), first, second,
                     torch.tensor([shape[-1], shape[-2]] if matrix else [0, 0]), torch.tensor(3.0, dtype=torch.float64)])
    cpu.run(kernel, torch.float64, rows, cpu.scalars(kernel, {"lr": lr}))
    return list(zip(rows, expected))


def test_another_factored_update_is_printed_and_agrees_with_its_maths_in_float64():
    for row, new in _kernel_and_maths(_module("tests.row_scaled", _row_scaled)):
        np.testing.assert_allclose(row[0].numpy(), new.param, rtol=1e-13, atol=1e-13)
        assert row[-1].item() == 4.0
        if new.state.row is not None:
            np.testing.assert_allclose(row[2].numpy(), new.state.row, rtol=1e-13)
            np.testing.assert_allclose(row[3].numpy(), new.state.column, rtol=1e-13)


def test_column_means_read_the_parameters_before_the_pass_that_writes_them():
    """A column mean of the parameters in the pass that steps them: its strips run first (they
    once ran after the rows, and read the new parameters)."""
    def of_the_weights(grad, state, param, *, lr=0.1):
        if state.flat is not None:
            return _row_scaled(grad, state, param, lr=lr)
        return Step(param - lr * grad, _State(state.step + 1, mean(grad * grad, -1), mean(param * param, -2), None), {})

    (row, new), _ = _kernel_and_maths(_module("tests.of_the_weights", of_the_weights))
    np.testing.assert_allclose(row[3].numpy(), new.state.column, rtol=1e-13)
    np.testing.assert_allclose(row[0].numpy(), new.param, rtol=1e-13)


def test_two_passes_with_column_means_build_and_agree():
    def twice(grad, state, param, *, lr=0.1):
        if state.flat is not None:
            return _row_scaled(grad, state, param, lr=lr)
        row = mean(grad * grad, -1)
        u = grad / sqrt(row @ mean(grad * grad, -2) + 1.0)  # a column mean in the first pass
        return Step(param - lr * u, _State(state.step + 1, row, mean(u * u, -2), None), {})

    (row, new), _ = _kernel_and_maths(_module("tests.twice", twice))
    np.testing.assert_allclose(row[0].numpy(), new.param, rtol=1e-13)
    np.testing.assert_allclose(row[3].numpy(), new.state.column, rtol=1e-13)


def test_a_nan_learning_rate_makes_nan_on_every_path_as_torchs():
    """min(lr, 1/sqrt(t)) keeps a NaN learning rate, as torch.optim's min(lr, ...) does."""
    results = []
    for make in (lambda p: adamlab.Adafactor(p, fused=False), lambda p: adamlab.Adafactor(p),
                 lambda p: torch.optim.Adafactor(p)):
        params = [torch.ones(4, 3).requires_grad_(), torch.ones(5).requires_grad_()]
        optimizer = make(params)
        optimizer.param_groups[0]["lr"] = float("nan")
        for param in params:
            param.grad = torch.full(param.shape, 0.5)
        optimizer.step()
        results.append([param.isnan().all().item() for param in params])
    assert results == [[True, True]] * 3


def test_what_a_factored_kernel_cannot_take_is_said():
    def kept_column_without_a_mean(grad, state, param, *, lr=0.1):
        if state.flat is not None:
            return _row_scaled(grad, state, param, lr=lr)
        column = state.column * 2  # a new column state that no column mean leads to
        return Step(param - lr * grad * column, _State(state.step + 1, state.row, column, None), {})

    rule = _module("tests.kept", kept_column_without_a_mean)
    matrices = symbolic.trace(rule, {"lr": 0.1}, {"step": "tensor", "row": "row", "column": "column"})
    vectors = symbolic.trace(rule, {"lr": 0.1}, {"step": "tensor", "flat": "element"})
    with pytest.raises(symbolic.TraceError, match="a column value kept without a column mean"):
        factored.kernel(rule, matrices, vectors)
    with pytest.raises(symbolic.TraceError, match="takes a factored kernel"):
        cpu.generated(adafactor, dict(lr=0.01, beta2_decay=-0.8, eps1=1e-30, eps2=1e-3, d=1.0, weight_decay=0.0,
                                      beta1=None, maximize=False), MATRIX)
    with pytest.raises(symbolic.TraceError, match="a power of a tensor"):  # torch's power rounds in float32
        symbolic.trace(_module("tests.power", lambda grad, state, param: state.row**2), {},
                       {"step": "tensor", "row": "row"})
    with pytest.raises(symbolic.TraceError, match="@ of a row and a column only"):
        symbolic.trace(_module("tests.matmul", lambda grad, state, param: param @ grad), {}, {"step": "tensor"})
