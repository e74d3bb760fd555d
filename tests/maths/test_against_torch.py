"""The float64 NumPy reference against torch.optim, an independent implementation.

micrograd's test in our setting: the same random gradients through
``adamlab.maths`` in NumPy and through torch.optim in float64, for every
configuration torch's own optimizer suite runs; the results must agree to
rounding. This checks the maths itself, apart from adamlab's torch plumbing.
"""

import inspect

import numpy as np
import pytest
import torch

from adamlab import maths

from ..conftest import default_dtype, numbers_dtype
from ..optim.test_parity import CONFIGURATIONS, in_dtype

MATHS = {"SGD": maths.sgd, "Adagrad": maths.adagrad, "RMSprop": maths.rmsprop,
         "Adam": maths.adam, "AdamW": maths.adam, "NAdam": maths.nadam, "RAdam": maths.radam,
         "Adamax": maths.adamax}


def _number(value):
    return float(value) if isinstance(value, torch.Tensor) else value


def maths_arguments(name, group):
    """The maths' keyword arguments for a torch.optim parameter group."""
    module = MATHS[name]
    names = inspect.signature(module.update).parameters
    arguments = {key: _number(value) for key, value in group.items() if key in names}
    if "betas" in group:
        arguments["beta1"], arguments["beta2"] = map(_number, group["betas"])
    if name == "AdamW":
        arguments["decoupled_weight_decay"] = True
    return arguments


@pytest.mark.parametrize("name, kwargs", CONFIGURATIONS)
def test_reference_maths_matches_torch_optim_in_float64(name, kwargs):
    generator = np.random.default_rng(0)
    start = generator.normal(size=(4, 3))
    grads = [generator.normal(size=(4, 3)) * scale for scale in np.geomspace(1.0, 1e-3, 30)]

    param = torch.nn.Parameter(torch.from_numpy(start.copy()))
    kwargs = in_dtype({key: value for key, value in kwargs.items() if key != "capturable"}, torch.float64)
    with default_dtype(numbers_dtype(name)):  # float64 throughout, NAdam's mu_product too
        optimizer = getattr(torch.optim, name)([param], **kwargs)
        for grad in grads:
            param.grad = torch.from_numpy(grad.copy())
            optimizer.step()

    module = MATHS[name]
    group = optimizer.param_groups[0]
    arguments = maths_arguments(name, group)
    init_names = inspect.signature(module.init).parameters
    state = module.init(start, **{key: value for key, value in group.items() if key in init_names})
    theta = start
    for grad in grads:
        theta, state, _ = module.update(grad, state, theta, **arguments)

    np.testing.assert_allclose(theta, param.detach().numpy(), rtol=1e-12, atol=1e-14)
