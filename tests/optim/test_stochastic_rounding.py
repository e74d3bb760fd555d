"""bfloat16 weights without a float32 master copy: stochastic rounding keeps the updates that
rounding to nearest drops, on both the fused and the simple path."""

import pytest
import torch

import adamlab
from adamlab.lab.training import TrainConfig, Training
from adamlab.optim.base import stochastic_round

BELOW, ABOVE = 0.99609375, 1.0  # neighbouring bfloat16 values: 1 - 2^-8 and 1


def test_rounding_is_unbiased_and_lands_on_a_neighbour():
    torch.manual_seed(0)
    x = torch.full((200_000,), 1.0 + 2**-10)  # an eighth of the way from 1 to the next bfloat16, 1 + 2^-7
    rounded = stochastic_round(x).float()
    assert set(rounded.unique().tolist()) == {1.0, 1.0 + 2**-7}
    assert rounded.mean().item() == pytest.approx(1.0 + 2**-10, abs=3e-5)
    negative = stochastic_round(-x).float()
    assert negative.mean().item() == pytest.approx(-(1.0 + 2**-10), abs=3e-5)
    exact = torch.tensor([0.0, -2.0, 1.5, float("inf"), float("-inf")])
    assert torch.equal(stochastic_round(exact).float(), exact)
    assert stochastic_round(torch.tensor([float("nan")])).isnan().all()


def lion_step_from_one(fused, stochastic_rounding=True, n=100_000, seed=0):
    """One Lion step of lr 1e-3 on bfloat16 weights at 1: exactly 0.999 in float32, which lies
    between the bfloat16 values 1 - 2^-8 and 1, a quarter of the way down."""
    torch.manual_seed(seed)
    param = torch.nn.Parameter(torch.ones(n, dtype=torch.bfloat16))
    param.grad = torch.ones(n, dtype=torch.bfloat16)
    adamlab.Lion([param], lr=1e-3, fused=fused, stochastic_rounding=stochastic_rounding).step()
    return param.detach().float()


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
def test_each_path_rounds_the_step_without_bias(fused):
    stepped = lion_step_from_one(fused)
    assert set(stepped.unique().tolist()) == {BELOW, ABOVE}
    assert stepped.mean().item() == pytest.approx(0.999, abs=2e-4)
    nearest = lion_step_from_one(fused, stochastic_rounding=False)
    assert nearest.eq(ABOVE).all()  # 0.999 is nearer 1: the step is lost


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
def test_the_rounding_is_reproducible_under_torch_manual_seed(fused):
    assert torch.equal(lion_step_from_one(fused, seed=3), lion_step_from_one(fused, seed=3))
    assert not torch.equal(lion_step_from_one(fused, seed=3), lion_step_from_one(fused, seed=4))


def test_the_fused_kernel_draws_different_bits_for_each_tensor():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.ones(4096, dtype=torch.bfloat16)) for _ in range(2)]
    for param in params:
        param.grad = torch.ones_like(param)
    adamlab.Lion(params, lr=1e-3, stochastic_rounding=True).step()
    assert not torch.equal(params[0], params[1])


OPTIMIZERS = {
    "adamw": lambda params, **kw: adamlab.AdamW(params, lr=1e-4, weight_decay=0.0, **kw),
    "adamw8bit": lambda params, **kw: adamlab.AdamW8bit(params, lr=1e-4, weight_decay=0.0, **kw),
    "lamb": lambda params, **kw: adamlab.LAMB(params, lr=1e-4, **kw),
    "adafactor": lambda params, **kw: adamlab.Adafactor(params, lr=1e-4, **kw),
    "nadam": lambda params, **kw: adamlab.NAdam(params, lr=1e-4, **kw),
    "radam": lambda params, **kw: adamlab.RAdam(params, lr=2e-4, **kw),  # its rectification starts small
    "adamax": lambda params, **kw: adamlab.Adamax(params, lr=1e-4, **kw),
}


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_small_steps_add_up_only_with_stochastic_rounding(name, fused):
    # 200 steps of ~1e-4 on weights at 1, each far below half a bfloat16 step there (2^-9).
    finals = {}
    for stochastic in (True, False):
        torch.manual_seed(0)
        param = torch.nn.Parameter(torch.ones(8192, dtype=torch.bfloat16))
        optimizer = OPTIMIZERS[name]([param], fused=fused, stochastic_rounding=stochastic)
        exact = torch.nn.Parameter(torch.ones(8192))
        reference = OPTIMIZERS[name]([exact], fused=fused)
        for _ in range(200):
            param.grad, exact.grad = torch.ones_like(param), torch.ones_like(exact)
            optimizer.step()
            reference.step()
        finals[stochastic] = param.float().mean().item()
    moved = 1.0 - exact.mean().item()
    assert moved > 0.005
    assert finals[False] == 1.0  # every step rounded away
    assert finals[True] == pytest.approx(exact.mean().item(), abs=0.05 * moved)


def test_other_dtypes_are_stored_as_computed():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.ones(100)) for _ in range(2)]
    for param in params:
        param.grad = torch.ones(100)
    adamlab.AdamW([params[0]], stochastic_rounding=True).step()
    adamlab.AdamW([params[1]]).step()
    assert torch.equal(params[0], params[1])


def test_training_in_bfloat16_checks_its_settings():
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16"):
        TrainConfig(dtype="float16")
    with pytest.raises(ValueError, match="rounding must be one of stochastic, nearest"):
        TrainConfig(rounding="up")
    with pytest.raises(ValueError, match="sgd has no stochastic rounding; use one of .*adamw"):
        Training(TrainConfig(optimizer="sgd", dtype="bfloat16", steps=2))
    run = Training(TrainConfig(dtype="bfloat16", steps=2, n_layer=1, n_embd=16))
    assert all(param.dtype == torch.bfloat16 for param in run.model.parameters())
    assert run.optimizer.param_groups[0]["stochastic_rounding"]
    run.run()
    assert run.history.val_loss and all(loss == loss for loss in run.history.val_loss)
