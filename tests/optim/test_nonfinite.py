"""One NaN or infinity in a gradient: the same effect on every path of an optimizer, and torch.optim's.

The rule (README, "What adamlab promises"), as a table: after one step with one non-finite gradient
element in a 64 x 64 matrix and one in a 64-vector, how many elements of each are not finite,
then after one more step with finite gradients.
"""

import pytest
import torch
from lion_pytorch import Lion as LionPytorch

import adamlab

ELEMENT = {"nan": (1, 1, 1, 1), "inf": (1, 1, 1, 1)}  # only the element whose gradient was not finite
#: optimizer -> (adamlab's class, settings, torch's class or None) and, by kind of gradient, the
#: non-finite count of (matrix, vector) after the step and after the next.
RULES = {
    "SGD": (adamlab.SGD, dict(lr=0.1, momentum=0.9), torch.optim.SGD, ELEMENT),
    "Adagrad": (adamlab.Adagrad, dict(lr=0.1), torch.optim.Adagrad, ELEMENT),
    "RMSprop": (adamlab.RMSprop, dict(lr=0.01, momentum=0.9, centered=True), torch.optim.RMSprop, ELEMENT),
    "Adam": (adamlab.Adam, dict(lr=0.01, weight_decay=0.1), torch.optim.Adam, ELEMENT),
    "AMSGrad": (adamlab.Adam, dict(lr=0.01, amsgrad=True), torch.optim.Adam, ELEMENT),
    "AdamW": (adamlab.AdamW, dict(lr=0.01), torch.optim.AdamW, ELEMENT),
    "NAdam": (adamlab.NAdam, dict(lr=0.01, weight_decay=0.1), torch.optim.NAdam, ELEMENT),
    # (not against torch.optim: in RAdam's first five steps, plain momentum, an infinite m stays
    # infinite here, where torch's lerp makes it NaN a step later, inf - inf)
    "RAdam": (adamlab.RAdam, dict(lr=0.01), None, ELEMENT),
    "Adamax": (adamlab.Adamax, dict(lr=0.01), torch.optim.Adamax, ELEMENT),
    # a trust ratio whose norm is not finite falls back to 1, as for a zero norm
    "LAMB": (adamlab.LAMB, dict(lr=0.01, weight_decay=0.1), None, ELEMENT),
    # sign(NaN) is NaN (lion-pytorch's torch.sign makes it 0 and freezes the element silently);
    # an infinite gradient has a sign: the weight steps by lr as ever, its momentum is infinite
    "Lion": (adamlab.Lion, dict(lr=0.01), None, {"nan": (1, 1, 1, 1), "inf": (0, 0, 0, 0)}),
    # a block of 256 whose moment is not finite cannot be coded: NaN from the next step
    "AdamW8bit": (adamlab.AdamW8bit, dict(lr=0.01), None, {"nan": (1, 1, 256, 1), "inf": (1, 1, 256, 1)}),
    # a matrix's row and column means carry it everywhere (an infinity: its row and column first)
    "Adafactor": (adamlab.Adafactor, dict(lr=0.01), torch.optim.Adafactor,
                  {"nan": (4096, 1, 4096, 1), "inf": (127, 1, 4096, 1)}),
}
PATHS = {"fused": {}, "simple": {"fused": False}}
VALUES = {"nan": float("nan"), "inf": float("inf")}


def run(optimizer_class, settings, bad):
    """Two finite steps, one with a non-finite gradient element in each tensor, one finite again;
    the parameters after the last two."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(64, 64, generator=generator)),
              torch.nn.Parameter(torch.randn(64, generator=generator))]
    optimizer = optimizer_class(params, **settings)
    seen = []
    for step in range(4):
        for param in params:
            param.grad = torch.randn(param.shape, generator=generator)
        if step == 2:
            params[0].grad[3, 5] = bad
            params[1].grad[7] = bad
        optimizer.step()
        if step >= 2:
            seen.append([param.detach().clone() for param in params])
    return seen, optimizer


@pytest.mark.parametrize("kind", VALUES)
@pytest.mark.parametrize("name", RULES)
def test_a_non_finite_gradient_has_the_documented_effect_on_every_path(name, kind):
    optimizer_class, settings, torch_class, counts = RULES[name]
    runs = {path: run(optimizer_class, {**settings, **extra}, VALUES[kind])[0] for path, extra in PATHS.items()}
    if torch_class is not None:
        runs["torch.optim"] = run(torch_class, settings, VALUES[kind])[0]
    for path, seen in runs.items():
        found = tuple(int((~param.isfinite()).sum()) for params in seen for param in params)
        assert found == counts[kind], path
    for path, seen in runs.items():  # the same elements, and the same finite values
        for ours, fused in zip(sum(seen, []), sum(runs["fused"], [])):
            assert torch.equal(ours.isnan(), fused.isnan()) and torch.equal(ours.isinf(), fused.isinf()), path
            torch.testing.assert_close(ours, fused, rtol=2e-5, atol=1e-6, equal_nan=True, msg=path)


def test_lion_pytorch_hides_a_nan_gradient_where_adamlab_shows_it():
    # The difference the rule above pins: lion-pytorch's step leaves the weight as it was.
    seen, _ = run(LionPytorch, dict(lr=0.01), float("nan"))
    assert all(param.isfinite().all() for params in seen for param in params)
