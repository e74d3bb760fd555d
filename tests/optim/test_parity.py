"""adamlab's optimizers against torch.optim on every configuration torch's own suite tests.

The configurations come from torch.testing's optimizer database (``optim_db``),
for CPU and for CUDA (the CUDA ones add capturable mode and tensor
hyperparameters, which adamlab honours on any device). Both sides train the
same MLP on the same minibatches for 100 steps; parameters and state must agree.
"""

import pytest
import torch

import adamlab

from ..conftest import OPTIMIZER_NAMES, Batches, default_dtype, make_mlp, numbers_dtype, pair, train

from torch.testing._internal.common_optimizers import optim_db  # needs the expecttest package


def _configurations():
    for info in optim_db:
        name = info.optim_cls.__name__
        if name not in OPTIMIZER_NAMES:
            continue
        seen = set()
        for device in ("cpu", "cuda"):
            for case in info.optim_inputs_func(device=device, dtype=torch.float32):
                if case.desc not in seen:
                    seen.add(case.desc)
                    yield pytest.param(name, case.kwargs, id=f"{name}-{case.desc}")


CONFIGURATIONS = list(_configurations())

# float64 agrees to rounding; float32 differs by rounding order, which 100 steps
# amplify to ~2e-6 at worst (RMSprop centered with momentum divides by a variance).
TOLERANCES = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=0.0)}


def in_dtype(kwargs, dtype):
    """Tensor hyperparameters in the run's precision, so float64 runs are float64 throughout."""
    def convert(value):
        if isinstance(value, torch.Tensor):
            return value.to(dtype)
        if isinstance(value, tuple):
            return tuple(convert(item) for item in value)
        return value
    return {key: convert(value) for key, value in kwargs.items()}


def test_the_database_covers_every_optimizer():
    names = {param.values[0] for param in CONFIGURATIONS}
    assert names == set(OPTIMIZER_NAMES)
    assert len(CONFIGURATIONS) >= 40


PATHS = {"fused": {}, "simple": {"fused": False}}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name, kwargs", CONFIGURATIONS)
def test_matches_torch_after_100_steps(name, kwargs, dtype, path):
    ours_class, torch_class = pair(name)
    # torch.optim runs capturable mode on accelerators only; it changes no maths.
    torch_kwargs = {key: value for key, value in kwargs.items() if key != "capturable"}
    ours_model, torch_model = make_mlp(dtype), make_mlp(dtype)
    with default_dtype(numbers_dtype(name, dtype)):
        ours = ours_class(ours_model.parameters(), **in_dtype(kwargs, dtype), **PATHS[path])
        reference = torch_class(torch_model.parameters(), **in_dtype(torch_kwargs, dtype))
        batches = Batches(dtype)
        train(ours_model, ours, 100, batches)
        train(torch_model, reference, 100, batches)

    # The same group layout, but for adamlab's `fused` flag, which torch's RMSprop lacks.
    ours_group, torch_group = ours.state_dict()["param_groups"][0], reference.state_dict()["param_groups"][0]
    ours_group = {key: value for key, value in ours_group.items() if key in torch_group}
    assert list(ours_group) == list(torch_group)
    assert {key: value for key, value in ours_group.items() if key not in ("capturable", "fused")} == \
        {key: value for key, value in torch_group.items() if key not in ("capturable", "fused")}
    for ours_param, torch_param in zip(ours_model.parameters(), torch_model.parameters()):
        torch.testing.assert_close(ours_param, torch_param, **TOLERANCES[dtype])
        ours_state, torch_state = ours.state[ours_param], reference.state[torch_param]
        assert list(ours_state) == list(torch_state)
        for key, value in torch_state.items():
            assert ours_state[key].dtype == value.dtype, key
            torch.testing.assert_close(ours_state[key].cpu(), value, **TOLERANCES[dtype], msg=key)


@pytest.mark.parametrize("name, kwargs", CONFIGURATIONS)
def test_the_fused_kernel_runs_by_default_and_agrees_with_the_simple_path(name, kwargs, kernel_calls):
    calls = kernel_calls
    models = [make_mlp(), make_mlp()]
    optimizers = [getattr(adamlab, name)(model.parameters(), **kwargs, **extra)
                  for model, extra in zip(models, ({}, {"fused": False}))]
    for model, optimizer in zip(models, optimizers):
        train(model, optimizer, 100)
    assert len(calls) == 100  # one call a step: every parameter of the group in one kernel
    for fused, simple in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(fused, simple, rtol=1e-5, atol=1e-5)
