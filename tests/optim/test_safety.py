"""What a careless or hostile script does to parameters, gradients and state between steps.

Whatever it does, no step reads or writes memory it should not: a change the step cannot take
is refused, as torch.optim refuses it (a RuntimeError; adamlab's is a ValueError too), before
anything changes; a change it can take (another layout of the same numbers) gives the step an
untouched run gives. On every path: the fused kernel (by default and demanded) and the simple one.
"""

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adamlab

#: Every optimizer, with settings under which it keeps every kind of state it has.
OPTIMIZERS = {
    "SGD": (adamlab.SGD, dict(lr=0.1, momentum=0.9)),
    "Adagrad": (adamlab.Adagrad, dict(lr=0.1)),
    "RMSprop": (adamlab.RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
    "Adam": (adamlab.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    "AdamW": (adamlab.AdamW, dict(lr=0.01)),
    "NAdam": (adamlab.NAdam, dict(lr=0.01, weight_decay=0.1)),
    "RAdam": (adamlab.RAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    "Adamax": (adamlab.Adamax, dict(lr=0.01)),
    "Lion": (adamlab.Lion, dict(lr=0.01)),
    "LAMB": (adamlab.LAMB, dict(lr=0.01)),
    "AdamW8bit": (adamlab.AdamW8bit, dict(lr=0.01)),
    "Adafactor": (adamlab.Adafactor, dict(lr=0.01)),
}
PATHS = {"fused by default": {}, "fused demanded": {"fused": True}, "simple": {"fused": False}}
SHAPES = [(64, 80), (80,), (3, 4)]  # a matrix 8-bit Adam quantizes, a vector, a small matrix


def make(name, path, seed=0):
    optimizer_class, settings_ = OPTIMIZERS[name]
    generator = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in SHAPES]
    optimizer = optimizer_class([{"params": params[:2]}, {"params": params[2:]}], **settings_, **PATHS[path])
    return params, optimizer


def set_grads(params, step):
    generator = torch.Generator().manual_seed(100 + step)
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator)


def snapshot(params, optimizer):
    """Copies of the parameters, their gradients, their state and the groups' settings."""
    groups = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    return copy.deepcopy(([param.detach() for param in params], [param.grad for param in params],
                          [optimizer.state.get(param) for param in params], groups, len(optimizer.state)))


def assert_same(before, after):
    for a, b in zip(before[0] + before[1], after[0] + after[1]):
        assert a.shape == b.shape and torch.equal(a, b)
    assert before[3:] == after[3:]
    for state, other in zip(before[2], after[2]):
        assert (state is None) == (other is None)
        if state is None:
            continue
        assert state.keys() == other.keys()
        for key, value in state.items():
            if isinstance(value, torch.Tensor):  # (a tensor grown by resize_ holds whatever was in memory: NaN too)
                torch.testing.assert_close(value, other[key], rtol=0, atol=0, equal_nan=True, msg=key)
            else:
                assert type(value) is type(other[key]) and value == other[key], key


def state_tensor(optimizer, param, draw_key):
    # not the numbers (the step, NAdam's mu_product): one element in any shape is one number
    keys = sorted(key for key, value in optimizer.state[param].items() if key not in optimizer.scalar_state)
    return draw_key(keys)


# --- changes that must be refused: (what it does, given the parameter and the drawn sizes) --------

def resize_the_parameter(params, optimizer, param, data):
    size = data.draw(st.integers(1, 12_000).filter(lambda n: n != param.numel()), label="new size")
    param.data = torch.randn(size)
    param.grad = torch.randn(size)


def reshape_the_parameter(params, optimizer, param, data):
    shape = (param.numel() // 8, 8) if param.dim() == 1 else (param.shape[-1], -1)
    param.data = param.data.reshape(shape)
    param.grad = param.grad.reshape(shape)


def resize_the_gradient(params, optimizer, param, data):
    size = data.draw(st.integers(0, 12_000).filter(lambda n: n != param.numel()), label="gradient size")
    param.grad.data = torch.randn(size)  # past torch's check on assigning .grad


def resize_a_state_tensor(params, optimizer, param, data):
    key = state_tensor(optimizer, param, lambda keys: data.draw(st.sampled_from(keys), label="key"))
    value = optimizer.state[param][key]
    size = data.draw(st.integers(0, 12_000).filter(lambda n: n != value.numel()), label="state size")
    value.resize_(size)


def move_a_state_tensor(params, optimizer, param, data):
    key = state_tensor(optimizer, param, lambda keys: data.draw(st.sampled_from(keys), label="key"))
    value = optimizer.state[param][key]
    size = data.draw(st.integers(0, 12_000).filter(lambda n: n != value.numel()), label="state size")
    value.data = torch.zeros(size, dtype=value.dtype)


def replace_a_state_tensor(params, optimizer, param, data):
    key = state_tensor(optimizer, param, lambda keys: data.draw(st.sampled_from(keys), label="key"))
    value = optimizer.state[param][key]
    replacement = data.draw(st.sampled_from(["reshaped", "number", "expanded"]), label="replacement")
    if replacement == "reshaped":
        optimizer.state[param][key] = value.reshape(-1, 1) if value.dim() != 2 or value.shape[1] != 1 else value.reshape(-1)
    elif replacement == "number":
        optimizer.state[param][key] = 0.0
    else:  # the right shape, but every element one memory location
        optimizer.state[param][key] = torch.zeros(1, dtype=value.dtype).expand(value.shape)


def break_the_step_counter(params, optimizer, param, data):
    state = optimizer.state[param]
    if "step" not in state:  # SGD and Lion keep no counter: break their one state tensor instead
        (key,) = state
        state[key] = state[key].flatten()[:-1]
        return
    state["step"] = data.draw(st.sampled_from([torch.zeros(3), "three", torch.tensor(2.0 + 0j)]), label="step")


def expand_the_parameter(params, optimizer, param, data):
    param.data = torch.zeros(1).expand(param.shape)


REFUSED = [resize_the_parameter, reshape_the_parameter, resize_the_gradient, resize_a_state_tensor,
           move_a_state_tensor, replace_a_state_tensor, break_the_step_counter, expand_the_parameter]


# --- changes that must be taken: the same numbers in another layout --------------------------------

def _relaid(tensor):
    """The same values, laid out column-major (2-D) or as every other element of a larger buffer."""
    if tensor.dim() == 2:
        return tensor.t().contiguous().t()
    return torch.zeros(tensor.numel() * 2, dtype=tensor.dtype)[::2].copy_(tensor.reshape(-1)).view(tensor.shape)


def relay_the_parameter(params, optimizer, param, data):
    param.data = _relaid(param.data)
    param.grad = _relaid(param.grad)


def relay_the_gradient(params, optimizer, param, data):
    param.grad = _relaid(param.grad)


def relay_a_state_tensor(params, optimizer, param, data):
    key = state_tensor(optimizer, param, lambda keys: data.draw(st.sampled_from(keys), label="key"))
    optimizer.state[param][key] = _relaid(optimizer.state[param][key])


TAKEN = [relay_the_parameter, relay_the_gradient, relay_a_state_tensor]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", OPTIMIZERS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_change_between_steps_is_refused_before_anything_changes_or_taken_as_it_is(name, path, data):
    params, optimizer = make(name, path)
    twin_params, twin = make(name, path)
    for step in range(2):  # state in every parameter
        for each, stepper in ((params, optimizer), (twin_params, twin)):
            set_grads(each, step)
            stepper.step()
    set_grads(params, 2)
    set_grads(twin_params, 2)
    index = data.draw(st.integers(0, len(params) - 1), label="parameter")
    change = data.draw(st.sampled_from(REFUSED + TAKEN), label="change")
    change(params, optimizer, params[index], data)
    if change in REFUSED:
        before = snapshot(params, optimizer)
        with pytest.raises(RuntimeError) as refused:
            optimizer.step()
        assert isinstance(refused.value, ValueError) and f"group {0 if index < 2 else 1}" in str(refused.value)
        assert_same(before, snapshot(params, optimizer))
        with pytest.raises(RuntimeError):  # and so again: nothing was half done
            optimizer.step()
        return
    optimizer.step()
    twin.step()
    for ours, theirs in zip(params, twin_params):
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=1e-7)
    for param, other in zip(params, twin_params):
        for key, value in twin.state[other].items():
            torch.testing.assert_close(optimizer.state[param][key], value, rtol=1e-6, atol=1e-7)


def test_the_reported_crash_is_a_size_mismatch_error():
    # SIGSEGV, or "munmap_chunk(): invalid pointer", before the kernels checked what they are handed.
    for size in (50_000, 6_000, 1_000):
        for optimizer_class in (adamlab.Adam, adamlab.AdamW, adamlab.SGD, adamlab.Lion, adamlab.AdamW8bit,
                                adamlab.Adafactor):
            param = torch.nn.Parameter(torch.randn(5000))
            kwargs = {"momentum": 0.9} if optimizer_class is adamlab.SGD else {}
            optimizer = optimizer_class([param], **kwargs)
            param.grad = torch.randn(5000)
            optimizer.step()
            param.data, param.grad = torch.randn(size), torch.randn(size)
            with pytest.raises(RuntimeError, match=r"of parameter 0 of group 0 "):
                optimizer.step()


# --- a step that raises changes nothing, whichever parameter is the one refused ---------------------

def _refuse_meta(optimizer, params, position):
    """Put a parameter on the meta device in ``position``'s place: no fused step runs there."""
    group = optimizer.param_groups[0 if position < 2 else 1]
    index = [id(param) for param in group["params"]].index(id(params[position]))
    meta = torch.nn.Parameter(torch.zeros(params[position].shape, device="meta"))
    meta.grad = torch.zeros(params[position].shape, device="meta")
    group["params"][index] = meta

    def restore():
        group["params"][index] = params[position]
    return restore


def _refuse_gradient(optimizer, params, position):
    """Give ``position`` a gradient of another size than its parameter's."""
    good = params[position].grad
    params[position].grad = torch.zeros(params[position].shape)
    params[position].grad.data = torch.zeros(params[position].numel() + 1)

    def restore():
        params[position].grad = good
    return restore


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("first_step", [True, False], ids=["first step", "later step"])
def test_each_parameter_in_turn_refused_leaves_every_parameter_and_state_as_it_was(name, path, first_step):
    refusals = [_refuse_gradient] + ([_refuse_meta] if path == "fused demanded" else [])
    for refuse in refusals:
        for position in range(len(SHAPES)):
            params, optimizer = make(name, path)
            twin_params, twin = make(name, path)
            for step in range(0 if first_step else 2):
                for each, stepper in ((params, optimizer), (twin_params, twin)):
                    set_grads(each, step)
                    stepper.step()
            set_grads(params, 2)
            restore = refuse(optimizer, params, position)
            before = snapshot(params, optimizer)
            with pytest.raises(RuntimeError):
                optimizer.step()
            assert_same(before, snapshot(params, optimizer))
            # put it right: the step then is the one an untouched run takes (no stale or half-made state)
            restore()
            optimizer.step()
            set_grads(twin_params, 2)
            twin.step()
            for ours, theirs in zip(params, twin_params):
                assert torch.equal(ours, theirs), (refuse.__name__, position)


def test_sgd_momentum_is_never_born_of_uninitialised_memory():
    # SGD(momentum, fused=True) over [w, bad] made w's buffer with empty_like before refusing bad;
    # the next step used that memory as momentum (values near 4e27 or NaN in w).
    w = torch.nn.Parameter(torch.ones(1000))
    bad = torch.nn.Parameter(torch.ones(3, device="meta"))
    optimizer = adamlab.SGD([w, bad], lr=0.1, momentum=0.9, fused=True)
    w.grad, bad.grad = torch.ones(1000), torch.ones(3, device="meta")
    with pytest.raises(RuntimeError, match="cannot take parameter 1 of group 0"):
        optimizer.step()
    assert w not in optimizer.state
    optimizer.param_groups[0]["params"] = [w]
    optimizer.step()
    assert torch.equal(w, torch.full((1000,), 0.9)) and torch.equal(optimizer.state[w]["momentum_buffer"],
                                                                    torch.ones(1000))
