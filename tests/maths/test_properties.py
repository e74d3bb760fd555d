"""Properties of the maths that must hold for any input."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from adamlab.maths import adagrad, adam, rmsprop, sgd

gradient = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False).filter(lambda g: abs(g) >= 1e-3)
learning_rate = st.floats(min_value=1e-6, max_value=1.0)
beta = st.floats(min_value=0.0, max_value=0.999)
vectors = arrays(np.float64, 6, elements=st.floats(min_value=-100, max_value=100))


@given(gradient, learning_rate, beta, beta)
def test_adams_first_step_has_magnitude_lr_for_any_nonzero_gradient(grad, lr, beta1, beta2):
    step = adam.update(np.float64(grad), adam.init(0.0), np.float64(0.0), lr=lr, beta1=beta1, beta2=beta2)
    assert abs(float(step.param)) == pytest.approx(lr, rel=1e-4)
    assert np.sign(step.param) == -np.sign(grad)


@given(st.lists(vectors, min_size=1, max_size=30), beta)
def test_amsgrads_kept_maximum_never_decreases(grads, beta2):
    state, param = adam.init(np.zeros(6), amsgrad=True), np.zeros(6)
    previous = state.v_max
    for grad in grads:
        step = adam.update(grad, state, param, beta2=beta2, amsgrad=True)
        param, state = step.param, step.state
        assert np.all(state.v_max >= previous)
        assert np.all(state.v_max >= state.v)
        previous = state.v_max


@given(st.lists(vectors, min_size=1, max_size=20), learning_rate, beta, beta)
def test_adamw_with_zero_weight_decay_equals_adam(grads, lr, beta1, beta2):
    states = [adam.init(np.ones(6)), adam.init(np.ones(6))]
    params = [np.ones(6), np.ones(6)]
    for grad in grads:
        for index, decoupled in enumerate((False, True)):
            step = adam.update(grad, states[index], params[index], lr=lr, beta1=beta1, beta2=beta2,
                               weight_decay=0.0, decoupled_weight_decay=decoupled)
            params[index], states[index] = step.param, step.state
    np.testing.assert_array_equal(params[0], params[1])


@given(st.lists(vectors, min_size=2, max_size=20), learning_rate)
def test_adagrads_sum_grows_and_its_effective_rate_shrinks(grads, lr):
    state, param = adagrad.init(np.zeros(6)), np.zeros(6)
    rates = []
    for grad in grads:
        previous = state.sum_sq
        step = adagrad.update(grad, state, param, lr=lr)
        param, state = step.param, step.state
        assert np.all(state.sum_sq >= previous)
        rates.append(lr / (np.sqrt(state.sum_sq) + 1e-10))
    assert np.all(np.diff(rates, axis=0) <= 0)


@given(st.lists(vectors, min_size=1, max_size=10), learning_rate)
def test_sgd_without_momentum_is_gradient_descent(grads, lr):
    state, param, expected = sgd.init(np.zeros(6)), np.zeros(6), np.zeros(6)
    for grad in grads:
        step = sgd.update(grad, state, param, lr=lr)
        param, state = step.param, step.state
        expected = expected - lr * grad
    np.testing.assert_allclose(param, expected, rtol=1e-12, atol=1e-12)


MATHS_ON_TENSORS = [
    (sgd, dict(momentum=0.9, nesterov=True, weight_decay=0.1), {}),
    (adagrad, dict(lr_decay=0.1, weight_decay=0.1), {}),
    (rmsprop, dict(centered=True, momentum=0.5, weight_decay=0.1), dict(centered=True, momentum=0.5)),
    (adam, dict(amsgrad=True, weight_decay=0.1, maximize=True), dict(amsgrad=True)),
]


@settings(max_examples=25)
@given(st.lists(vectors, min_size=1, max_size=10), vectors)
@pytest.mark.parametrize("maths, hyperparameters, init", MATHS_ON_TENSORS,
                         ids=[case[0].__name__.rsplit(".", 1)[-1] for case in MATHS_ON_TENSORS])
def test_the_same_maths_on_tensors_gives_the_numpy_result(maths, hyperparameters, init, grads, start):
    numpy_state, numpy_param = maths.init(start, **init), start
    tensor_state = type(numpy_state)(*(torch.from_numpy(np.array(f)) if isinstance(f, np.ndarray) else f
                                       for f in numpy_state))
    tensor_param = torch.from_numpy(start.copy())
    for grad in grads:
        step = maths.update(grad, numpy_state, numpy_param, **hyperparameters)
        numpy_param, numpy_state = step.param, step.state
        step = maths.update(torch.from_numpy(grad), tensor_state, tensor_param, **hyperparameters)
        tensor_param, tensor_state = step.param, step.state
    np.testing.assert_allclose(tensor_param.numpy(), numpy_param, rtol=1e-12, atol=1e-12)
