"""The maths against values computed by hand."""

import numpy as np
import pytest

from adamlab.maths import adagrad, adam, rmsprop, sgd

approx = pytest.approx


def run(maths, grads, theta=1.0, init=None, **hyperparameters):
    state = (init or {}).get("state") or maths.init(np.float64(theta), **(init or {}))
    param, steps = np.float64(theta), []
    for grad in grads:
        step = maths.update(np.float64(grad), state, param, **hyperparameters)
        param, state = step.param, step.state
        steps.append(step)
    return steps


def test_adam_worked_example():
    # theta0 = 1, gradients 0.5, 0.3, 0.8, 0.6, lr 0.001, betas (0.9, 0.999), eps 1e-8.
    first, second, third, fourth = run(adam, [0.5, 0.3, 0.8, 0.6], lr=0.001)
    q = first.quantities
    assert (q["m"], q["v"]) == (approx(0.05), approx(0.00025))
    assert (q["bias_correction1"], q["bias_correction2"]) == (approx(0.1), approx(0.001))
    assert (q["m_hat"], q["v_hat"]) == (approx(0.5), approx(0.25))
    # The first step is lr * g / |g| = lr, short only by eps: 0.001 * 0.5 / (0.5 + 1e-8).
    assert q["update"] == approx(0.001 * 0.5 / (0.5 + 1e-8), rel=1e-12)
    assert first.param == approx(0.999, abs=1e-10)

    q = second.quantities
    assert (q["m"], q["v"]) == (approx(0.075), approx(0.00033975))
    # The lesson rounds 1 - 0.999^2 = 0.001999 to 0.002 and quotes v_hat ~ 0.170;
    # exactly it is 0.00033975 / 0.001999 = 0.169960.
    assert q["m_hat"] == approx(0.075 / 0.19)
    assert q["v_hat"] == approx(0.00033975 / 0.001999)
    assert q["update"] == approx(0.001 * (0.075 / 0.19) / np.sqrt(0.00033975 / 0.001999), rel=1e-7)
    assert second.param == approx(0.99804, abs=5e-6)
    assert third.state.step == 3 and fourth.state.step == 4


def test_sgd_plain_momentum_and_nesterov():
    assert [float(s.param) for s in run(sgd, [0.5, 0.3], lr=0.1)] == approx([0.95, 0.92])
    # momentum 0.9: b1 = 0.5, b2 = 0.9 * 0.5 + 0.3 = 0.75
    steps = run(sgd, [0.5, 0.3], lr=0.1, momentum=0.9)
    assert [float(s.quantities["momentum_buffer"]) for s in steps] == approx([0.5, 0.75])
    assert float(steps[-1].param) == approx(1 - 0.05 - 0.075)
    # nesterov steps along g + 0.9 * b: 0.5 + 0.45, then 0.3 + 0.675
    steps = run(sgd, [0.5, 0.3], lr=0.1, momentum=0.9, nesterov=True)
    assert float(steps[-1].param) == approx(1 - 0.095 - 0.0975)
    # dampening scales later gradients into the buffer: b2 = 0.9 * 0.5 + 0.5 * 0.3
    steps = run(sgd, [0.5, 0.3], lr=0.1, momentum=0.9, dampening=0.5)
    assert float(steps[-1].quantities["momentum_buffer"]) == approx(0.6)
    # L2 weight decay adds 0.1 * theta to the gradient: 0.5 + 0.1 * 1.0
    assert float(run(sgd, [0.5], lr=0.1, weight_decay=0.1)[0].param) == approx(1 - 0.06)
    assert float(run(sgd, [0.5], lr=0.1, maximize=True)[0].param) == approx(1.05)


def test_adagrad_sum_and_decayed_rate():
    steps = run(adagrad, [3.0, 4.0], lr=1.0, eps=0.0)
    assert float(steps[0].param) == approx(0.0)  # 1 - 3 / sqrt(9)
    assert float(steps[1].quantities["sum"]) == approx(25.0)
    assert float(steps[1].param) == approx(-0.8)  # 0 - 4 / sqrt(25)
    steps = run(adagrad, [3.0, 4.0], lr=1.0, eps=0.0, lr_decay=1.0)
    assert float(steps[1].quantities["lr_t"]) == approx(0.5)  # 1 / (1 + 1 * 1)
    init = adagrad.init(np.float64(1.0), initial_accumulator_value=16.0)
    assert float(adagrad.update(np.float64(3.0), init, np.float64(1.0), lr=1.0, eps=0.0).param) == approx(0.4)


def test_rmsprop_plain_centered_and_momentum():
    step = run(rmsprop, [2.0], lr=0.1, alpha=0.75, eps=0.0)[0]
    assert float(step.quantities["v"]) == approx(1.0)  # 0.25 * 4
    assert float(step.param) == approx(1 - 0.2)  # 0.1 * 2 / sqrt(1)
    state = rmsprop.init(np.float64(1.0), centered=True)
    step = rmsprop.update(np.float64(2.0), state, np.float64(1.0), lr=0.1, alpha=0.75, eps=0.0, centered=True)
    # grad_avg = 0.5, variance = 1 - 0.25 = 0.75
    assert float(step.param) == approx(1 - 0.1 * 2 / np.sqrt(0.75))
    state = rmsprop.init(np.float64(1.0), momentum=0.5)
    steps = [rmsprop.update(np.float64(2.0), state, np.float64(1.0), lr=0.1, alpha=0.75, eps=0.0, momentum=0.5)]
    steps.append(rmsprop.update(np.float64(2.0), steps[0].state, steps[0].param, lr=0.1, alpha=0.75,
                                eps=0.0, momentum=0.5))
    # v2 = 0.75 * 1 + 0.25 * 4 = 1.75; b2 = 0.5 * 2 + 2 / sqrt(1.75)
    assert float(steps[1].quantities["momentum_buffer"]) == approx(1 + 2 / np.sqrt(1.75))


def test_amsgrad_divides_by_the_largest_v():
    steps = run(adam, [1.0, 0.0], lr=0.1, amsgrad=True, eps=0.0)
    v_max = steps[1].quantities["v_max"]
    assert float(v_max) == approx(0.001)  # v fell to 0.000999, the maximum stays at step 1's
    assert float(steps[1].quantities["v_hat"]) == approx(0.001 / (1 - 0.999**2))


def test_adamw_decays_the_weight_directly_and_adam_through_the_gradient():
    adamw_step = run(adam, [0.0], theta=2.0, lr=0.1, weight_decay=0.5, decoupled_weight_decay=True)[0]
    assert float(adamw_step.quantities["decay"]) == approx(0.1)  # lr * wd * theta
    assert float(adamw_step.param) == approx(1.9)  # no gradient, so no adaptive step
    adam_step = run(adam, [0.0], theta=2.0, lr=0.1, weight_decay=0.5, eps=0.0)[0]
    # L2: g = 0.5 * 2 = 1, and Adam's first step is lr whatever the size of g.
    assert float(adam_step.param) == approx(1.9)
    assert float(adam_step.quantities["g"]) == approx(1.0)


def test_bias_correction():
    assert adam.bias_correction(0.9, 1) == approx(0.1)
    assert adam.bias_correction(0.999, 1000) == approx(1 - 0.999**1000)
