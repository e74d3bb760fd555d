"""8-bit Adam and AdamW: the codes, the kernel against the maths, the quality against float32
AdamW and bitsandbytes, the memory, and checkpoints in and out."""

import copy
import warnings

import numpy as np
import pytest
import torch

import adamlab
from adamlab.maths import adam8bit, quantize
from adamlab.optim.adam8bit import MIN_SIZE

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import bitsandbytes

SIGNS = [True, False]


def make_model(dtype=torch.float32, seed=0):
    """Two layers large enough to be quantized (8192 and 4096 weights) and their small biases."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Tanh(), torch.nn.Linear(128, 32)).to(dtype)


def batches(dtype=torch.float32, seed=1):
    generator = torch.Generator().manual_seed(seed)
    inputs, targets = torch.randn(512, 64, generator=generator), torch.randn(512, 32, generator=generator)
    while True:
        index = torch.randint(0, 512, (32,), generator=generator)
        yield inputs[index].to(dtype), targets[index].to(dtype)


def train(model, optimizer, steps, data=None):
    data = data or batches(next(model.parameters()).dtype)
    losses = []
    for _ in range(steps):
        inputs, targets = next(data)
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def moments(optimizer, param):
    """The dequantized (m, v) of a parameter, as float32."""
    state = optimizer.state[param]
    return (quantize.dequantize(state["exp_avg"], state["exp_avg_absmax"], signed=True, like=param),
            quantize.dequantize(state["exp_avg_sq"], state["exp_avg_sq_absmax"], signed=False, like=param))


# --- the codes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("signed", SIGNS, ids=["signed", "unsigned"])
def test_the_codes_are_bitsandbytes_dynamic_map(signed):
    theirs = bitsandbytes.functional.create_dynamic_map(signed=signed).numpy()
    np.testing.assert_allclose(quantize.code(signed), theirs, rtol=1e-6)  # theirs is summed in float32
    assert len(np.unique(quantize.code(signed))) == 256


@pytest.mark.parametrize("signed", SIGNS, ids=["signed", "unsigned"])
def test_each_value_gets_its_nearest_code(signed):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4096) * 10.0 ** rng.integers(-9, 2, 4096)
    x = x if signed else np.abs(x)
    codes, scales = quantize.quantize(x, signed=signed)
    scaled = x / np.repeat(scales.astype(np.float64), quantize.BLOCK)
    distances = np.abs(scaled[:, None] - quantize.code(signed)[None, :].astype(np.float64))
    chosen = distances[np.arange(x.size), codes]
    assert np.all(chosen <= distances.min(axis=1) + 1e-7)  # nearest, but for float32 rounding at ties
    assert np.array_equal(scales, np.abs(x).reshape(-1, quantize.BLOCK).max(axis=1).astype(np.float32))


def test_a_block_of_zeros_and_a_short_last_block():
    x = torch.zeros(300)
    x[280] = -2.0
    codes, scales = quantize.quantize(x, signed=True)
    assert scales.tolist() == [0.0, 2.0] and codes.shape == (300,)
    back = quantize.dequantize(codes, scales, signed=True, like=x)
    assert back[:256].eq(0).all() and back[280].item() == pytest.approx(-2.0 * 0.99296875)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_pieces_of_a_tensor_code_in_its_grid_of_blocks(kind):
    """A shard quantized from its place in the whole tensor (``start``), with the whole
    tensor's scales where its edges cut a block, gets the whole tensor's codes."""
    x = np.random.default_rng(3).standard_normal(1000)
    x = torch.from_numpy(x) if kind == "torch" else x
    codes, scales = quantize.quantize(x, signed=True)
    for start, end in [(0, 300), (300, 512), (512, 700), (700, 1000), (260, 270)]:
        first = start // quantize.BLOCK
        count = quantize.blocks(end - start, start)
        assert count == len(range(first, (end - 1) // quantize.BLOCK + 1))
        given = scales[first:first + count]
        piece_codes, piece_scales = quantize.quantize(x[start:end], signed=True, start=start, scales=given)
        assert np.array_equal(np.asarray(piece_codes), np.asarray(codes[start:end])) and piece_scales is given
        back = quantize.dequantize(piece_codes, given, signed=True, like=x[start:end], start=start)
        whole = quantize.dequantize(codes, scales, signed=True, like=x)
        assert np.array_equal(np.asarray(back), np.asarray(whole[start:end]))
        own = quantize.block_maxima(x[start:end], start=start)  # a cut block's own maximum is lower
        assert np.all(np.asarray(own) <= np.asarray(given)) and len(own) == count
    assert quantize.blocks(0, 300) == 0 == len(quantize.block_maxima(x[:0], start=300))  # an empty shard


@pytest.mark.parametrize("signed", SIGNS, ids=["signed", "unsigned"])
def test_the_kernels_cell_table_finds_the_same_code_as_a_search(signed):
    rng = np.random.default_rng(1)
    bounds = quantize.midpoints(signed)
    y = np.concatenate([rng.standard_normal(20000) * 10.0 ** rng.integers(-9, 1, 20000), bounds, -bounds,
                        np.nextafter(bounds, 2), np.nextafter(bounds, -2), [0.0, -0.0, 1.0, -1.0, 3.0, -3.0,
                                                                            2.0**-24, -(2.0**-25)]]).astype(np.float32)
    table = quantize.cell_table(signed)
    found = [int(table[quantize.cell_of(v)]) for v in y]
    found = [base + int(base < 255 and bounds[base] < v) for base, v in zip(found, y)]
    assert found == np.searchsorted(bounds, y).tolist()


# --- the step ----------------------------------------------------------------------------------

def test_the_maths_is_adams_step_on_the_dequantized_moments():
    rng = np.random.default_rng(2)
    param, state = rng.standard_normal(5000), adam8bit.init(np.zeros(5000))
    for _ in range(3):
        grad = rng.standard_normal(5000)
        m = quantize.dequantize(state.m, state.m_scales, signed=True, like=param)
        v = quantize.dequantize(state.v, state.v_scales, signed=False, like=param)
        expected = adamlab.maths.adam.update(grad, adamlab.maths.adam.State(state.step, m, v, None), param, lr=0.01)
        step = adam8bit.update(grad, state, param, lr=0.01)
        assert np.array_equal(step.param, expected.param)
        assert np.array_equal(step.state.m, quantize.quantize(expected.state.m, signed=True)[0])
        param, state = step.param, step.state


KERNEL_CASES = {
    "adamw": dict(cls=adamlab.AdamW8bit, lr=1e-2, weight_decay=0.1),
    "adam-l2": dict(cls=adamlab.Adam8bit, lr=1e-2, weight_decay=0.1),
    "maximize": dict(cls=adamlab.Adam8bit, lr=1e-2, maximize=True, betas=(0.8, 0.99)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("case", KERNEL_CASES)
def test_the_kernel_is_the_simple_path(case, dtype):
    settings = dict(KERNEL_CASES[case])
    cls = settings.pop("cls")
    torch.manual_seed(3)
    start = torch.randn(3, 5000, dtype=torch.float64)
    params = [torch.nn.Parameter(start.clone().to(dtype)) for _ in range(2)]
    optimizers = [cls([params[0]], **settings), cls([params[1]], fused=False, **settings)]
    for _ in range(5):
        grad = (torch.randn(3, 5000, dtype=torch.float64) * torch.logspace(-6, 0, 5000, dtype=torch.float64)).to(dtype)
        for param, optimizer in zip(params, optimizers):
            param.grad = grad.clone()
            optimizer.step()
    fused, simple = (optimizer.state[param] for optimizer, param in zip(optimizers, params))
    for key in ("exp_avg", "exp_avg_sq"):  # the same codes, but for the odd value at a boundary
        assert (fused[key] == simple[key]).float().mean() > 0.999
    # A code on the other side of a boundary (the kernel's fused multiply-adds round m
    # differently in the last bit) moves a weight by ~1% of a step of lr = 1e-2.
    tolerance = {torch.float32: 1e-4, torch.float64: 1e-12, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(params[0], params[1], rtol=tolerance, atol=tolerance)


def test_the_fused_kernel_runs_by_default(kernel_calls):
    calls = kernel_calls
    model = make_model()
    train(model, adamlab.AdamW8bit(model.parameters()), 2)
    assert calls == ["adam", "adam8bit"] * 2  # the small biases on Adam's kernel, the weights on the 8-bit one


def test_the_8bit_kernel_is_driven_by_the_base_class_plan_kept_between_steps(kernel_calls):
    """The quantized parameters take the base class's plan, as every optimizer's do: checked
    once, then kept while nothing it relied on changes; a state tensor replaced is checked anew."""
    model = make_model()
    optimizer = adamlab.AdamW8bit(model.parameters())
    train(model, optimizer, 2)
    plans = {key[1]: plan for key, plan in optimizer._plans.items()}
    assert set(plans) == {None, "_quantized_kernel_of"}  # Adam's kernel for the biases, the 8-bit one
    train(model, optimizer, 1)
    assert {key[1]: plan for key, plan in optimizer._plans.items()} == plans
    weight = model[0].weight
    optimizer.state[weight]["exp_avg"] = optimizer.state[weight]["exp_avg"].clone()
    train(model, optimizer, 1)
    assert optimizer._plans[(id(optimizer.param_groups[0]), "_quantized_kernel_of")] is not plans["_quantized_kernel_of"]
    assert kernel_calls == ["adam", "adam8bit"] * 4


def test_small_tensors_keep_adams_state_and_step():
    model, twin = make_model(), make_model()
    ours, theirs = adamlab.AdamW8bit(model.parameters(), lr=1e-2), torch.optim.AdamW(twin.parameters(), lr=1e-2)
    train(model, ours, 1)
    train(twin, theirs, 1)
    for param, other in zip(model.parameters(), twin.parameters()):
        quantized = param.numel() >= MIN_SIZE
        assert (ours.state[param]["exp_avg"].dtype == torch.uint8) == quantized
        if not quantized:
            torch.testing.assert_close(param, other)
            torch.testing.assert_close(ours.state[param]["exp_avg_sq"], theirs.state[other]["exp_avg_sq"])


def test_it_trains_like_float32_adamw():
    model, twin = make_model(), make_model()
    ours = adamlab.AdamW8bit(model.parameters(), lr=3e-3, weight_decay=0.1)
    theirs = torch.optim.AdamW(twin.parameters(), lr=3e-3, weight_decay=0.1)
    losses, reference = train(model, ours, 300), train(twin, theirs, 300)
    assert abs(np.mean(losses[-50:]) - np.mean(reference[-50:])) < 0.01 * np.mean(reference[-50:])
    m, _ = moments(ours, model[0].weight)
    exact = theirs.state[twin[0].weight]["exp_avg"]
    assert (m - exact).norm() < 0.1 * exact.norm()  # the trajectories part, slowly


def test_it_agrees_with_bitsandbytes():
    model, twin = make_model(), make_model()
    ours = adamlab.AdamW8bit(model.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = bitsandbytes.optim.AdamW8bit(twin.parameters(), lr=1e-3)
    train(model, ours, 1)
    train(twin, theirs, 1)
    # After one step the moments hold one gradient: the codes agree but where bitsandbytes'
    # CPU rounding is not to the nearest code (it is for ~98% of values).
    for ours_key, theirs_key in (("exp_avg", "state1"), ("exp_avg_sq", "state2")):
        codes = ours.state[model[0].weight][ours_key], theirs.state[twin[0].weight][theirs_key]
        assert (codes[0] == codes[1]).float().mean() > 0.95
    torch.testing.assert_close(ours.state[model[0].weight]["exp_avg_absmax"],
                               theirs.state[twin[0].weight]["absmax1"])
    losses = train(model, ours, 100), train(twin, theirs, 100)
    assert abs(np.mean(losses[0][-20:]) - np.mean(losses[1][-20:])) < 0.01 * np.mean(losses[1][-20:])


def test_the_state_is_at_most_27_percent_of_float32_adamws():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 512))
    twin = copy.deepcopy(model)
    ours, theirs = adamlab.AdamW8bit(model.parameters()), torch.optim.AdamW(twin.parameters())
    train(model, ours, 1, batches_of(512, 512))
    train(twin, theirs, 1, batches_of(512, 512))
    counted = [sum(value.numel() * value.element_size() for state in optimizer.state.values()
                   for value in state.values()) for optimizer in (ours, theirs)]
    assert counted[0] <= 0.27 * counted[1]


def batches_of(inputs, outputs):
    while True:
        yield torch.randn(8, inputs), torch.randn(8, outputs)


def test_complex_parameters_keep_full_state_and_integers_are_refused():
    torch.manual_seed(4)
    param = torch.nn.Parameter(torch.randn(5000, dtype=torch.complex64))
    twin = torch.nn.Parameter(param.detach().clone())
    ours, theirs = adamlab.AdamW8bit([param], lr=0.1), torch.optim.AdamW([twin], lr=0.1)
    for _ in range(3):
        grad = torch.randn(5000, dtype=torch.complex64)
        param.grad, twin.grad = grad, grad.clone()
        ours.step()
        theirs.step()
    torch.testing.assert_close(param, twin)
    with pytest.raises(TypeError, match="cannot optimize a parameter of dtype torch.int64"):
        adamlab.AdamW8bit([torch.zeros(5000, dtype=torch.long)])


@pytest.mark.parametrize("flag", ["amsgrad", "capturable"])
def test_flags_it_does_not_have_are_refused(flag):
    with pytest.raises(ValueError, match=f"does not support {flag}=True"):
        adamlab.AdamW8bit([{"params": [torch.nn.Parameter(torch.zeros(3))], flag: True}])


# --- checkpoints -------------------------------------------------------------------------------

def test_a_checkpoint_resumes_exactly():
    model = make_model()
    optimizer = adamlab.AdamW8bit(model.parameters(), lr=1e-2)
    data = batches()
    train(model, optimizer, 5, data)
    twin_model = copy.deepcopy(model)
    twin = adamlab.AdamW8bit(twin_model.parameters())
    twin.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    assert twin.state[twin_model[0].weight]["exp_avg_absmax"].dtype == torch.float32
    rest = list(next(data) for _ in range(5))
    train(model, optimizer, 5, iter(rest))
    train(twin_model, twin, 5, iter(rest))
    for a, b in zip(model.parameters(), twin_model.parameters()):
        assert torch.equal(a, b)


def test_a_bfloat16_checkpoint_keeps_float32_scales():
    model = make_model(torch.bfloat16)
    optimizer = adamlab.AdamW8bit(model.parameters())
    train(model, optimizer, 2)
    twin_model = copy.deepcopy(model)
    twin = adamlab.AdamW8bit(twin_model.parameters())
    saved = copy.deepcopy(optimizer.state_dict())
    twin.load_state_dict(saved)
    loaded = twin.state[twin_model[0].weight]
    assert loaded["exp_avg_absmax"].dtype == torch.float32
    assert torch.equal(loaded["exp_avg_absmax"], saved["state"][0]["exp_avg_absmax"])


def test_a_float32_adamw_state_is_quantized_on_load():
    model = make_model()
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-2)
    train(model, adamw, 10)
    twin_model = copy.deepcopy(model)
    ours = adamlab.AdamW8bit(twin_model.parameters(), lr=1e-2)
    ours.load_state_dict(adamw.state_dict())
    weight, exact = twin_model[0].weight, adamw.state[model[0].weight]
    assert ours.state[weight]["exp_avg"].dtype == torch.uint8
    m, v = moments(ours, weight)
    torch.testing.assert_close(m, exact["exp_avg"], rtol=0.05, atol=exact["exp_avg"].abs().max().item() * 1e-2)
    torch.testing.assert_close(v, exact["exp_avg_sq"], rtol=0.05, atol=exact["exp_avg_sq"].max().item() * 1e-2)
    assert ours.state[twin_model[0].bias]["exp_avg"].dtype == torch.float32  # small: kept as it was
    data = [next(batches()) for _ in range(3)]
    train(model, adamw, 3, iter(data))
    train(twin_model, ours, 3, iter(data))
    torch.testing.assert_close(twin_model[0].weight, model[0].weight, rtol=0, atol=2e-3)


def _saved_state():
    model = make_model()
    optimizer = adamlab.AdamW8bit(model.parameters())
    train(model, optimizer, 2)
    return optimizer.state_dict()


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.update(exp_avg_absmax=torch.zeros(16)), "one scale per block of 256 elements, 32 for this"),
    (lambda s: s.update(exp_avg_sq=s["exp_avg_sq"].reshape(64, 128)), "uint8 codes of the parameter's shape"),
    (lambda s: s.update(exp_avg=s["exp_avg"].float()), "uint8 codes"),
    (lambda s: s.pop("exp_avg_sq_absmax"), "keeps"),
])
def test_a_state_that_does_not_fit_raises_and_changes_nothing(damage, message):
    saved = _saved_state()
    damage(saved["state"][0])
    model = make_model()
    optimizer = adamlab.AdamW8bit(model.parameters())
    train(model, optimizer, 1)
    before = copy.deepcopy(optimizer.state_dict())
    with pytest.raises(ValueError, match=message):
        optimizer.load_state_dict(saved)
    after = optimizer.state_dict()
    for key, value in before["state"][0].items():
        assert torch.equal(after["state"][0][key], value)
