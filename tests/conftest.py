import contextlib
import copy

import pytest
import torch

import adamlab

#: adamlab's optimizers and torch.optim's of the same name.
OPTIMIZER_NAMES = ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "NAdam", "RAdam", "Adamax")


def make_mlp(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype)


class Batches:
    """Seeded minibatches of a fixed regression problem: the same sequence for every run."""

    def __init__(self, dtype=torch.float32, seed=1):
        generator = torch.Generator().manual_seed(seed)
        self.inputs = torch.randn(256, 5, generator=generator).to(dtype)
        self.targets = torch.randn(256, 3, generator=generator).to(dtype)
        self.seed = seed

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            index = torch.randint(0, 256, (16,), generator=generator)
            yield self.inputs[index], self.targets[index]


@contextlib.contextmanager
def default_dtype(dtype):
    """torch's default dtype set to ``dtype`` within the block: torch.optim keeps its per-parameter
    numbers (the step, NAdam's mu_product) in it."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def train(model, optimizer, steps, batches=None, start=0):
    """Take ``steps`` steps on the minibatch sequence, starting at its ``start``-th batch."""
    batches = iter(batches or Batches(next(model.parameters()).dtype))
    for _ in range(start):
        next(batches)
    for _ in range(steps):
        inputs, targets = next(batches)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()
    return model


def train_pair(ours, theirs, models, steps, dtype, negate_theirs=False, spike_at=None):
    """Train ``models`` (two twins) on the same batches, one step each in turn: ours and an
    independent implementation. ``negate_theirs``: theirs minimizes the negated loss (to test
    maximize); ``spike_at``: at that step the targets are 30 times larger, a batch far off the
    others (where StableAdamW's update clipping acts)."""
    batches = [iter(Batches(dtype)), iter(Batches(dtype))]
    for step in range(steps):
        for model, optimizer, batch, sign in zip(models, (ours, theirs), batches, (1, -1 if negate_theirs else 1)):
            inputs, targets = next(batch)
            optimizer.zero_grad()
            scale = 30.0 if step == spike_at else 1.0
            (sign * torch.nn.functional.mse_loss(model(inputs), scale * targets)).backward()
            optimizer.step()


def assert_the_fused_step_is_the_simple_paths_bit_for_bit(optimizer_class, kernel_calls: list, family: str,
                                                          dtype=torch.float32, **kwargs):
    """Five steps of ``optimizer_class(**kwargs)`` by default (each on the fused kernel of
    ``family``) and with fused=False give the same parameters, to the bit."""
    models = [make_mlp(dtype), make_mlp(dtype)]
    for model, fused in zip(models, (None, False)):
        train(model, optimizer_class(model.parameters(), **kwargs, fused=fused), 5)
    assert kernel_calls == [family] * 5
    for a, b in zip(*(model.parameters() for model in models)):
        assert torch.equal(a, b)


def assert_a_checkpoint_resumes_exactly(optimizer_class, **kwargs):
    """Ten steps, a state_dict copied as if saved to disk and loaded into a fresh optimizer
    (built with defaults), ten more steps on each: the two runs must not differ by a bit."""
    model = make_mlp()
    optimizer = optimizer_class(model.parameters(), **kwargs)
    train(model, optimizer, 10)
    twin_model = copy.deepcopy(model)
    twin = optimizer_class(twin_model.parameters())
    twin.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    saved_group, loaded_group = optimizer.param_groups[0], twin.param_groups[0]
    assert {key: loaded_group[key] for key in saved_group if key != "params"} == \
        {key: value for key, value in saved_group.items() if key != "params"}
    train(model, optimizer, 10, start=10)
    train(twin_model, twin, 10, start=10)
    for a, b in zip(model.parameters(), twin_model.parameters()):
        assert torch.equal(a, b)


def numbers_dtype(name, dtype=torch.float64):
    """The default dtype for a run of ``dtype`` that must agree with torch.optim to rounding.
    torch.optim keeps each parameter's numbers in the default dtype; beyond the step (exact
    either way) it rounds them there before each use (NAdam's mu_product), where adamlab's
    maths uses the exact number within a step: a float64 run keeps them in float64 on both
    sides (under float32 they differ by a relative 1e-9 after 100 steps)."""
    keeps_numbers = set(getattr(adamlab, name).scalar_state) - {"step"}
    return dtype if keeps_numbers else torch.get_default_dtype()


@pytest.fixture(params=OPTIMIZER_NAMES)
def name(request):
    return request.param


@pytest.fixture
def float64_numbers(name):
    """For a test that compares float64 runs with torch.optim's to rounding: run it under
    :func:`numbers_dtype`."""
    with default_dtype(numbers_dtype(name)):
        yield


def pair(name):
    """adamlab's class and torch.optim's class of one name."""
    return getattr(adamlab, name), getattr(torch.optim, name)


@pytest.fixture
def kernel_calls(monkeypatch):
    """The family of every fused CPU kernel called while the test runs, in order ("adam" for the
    kernels generated from adamlab.maths.adam, "adam8bit" for 8-bit Adam's loops around it)."""
    calls = []
    run = adamlab.kernels.cpu.Call.run

    def counted(call, *args, **kwargs):
        calls.append(call.kernel.family)
        return run(call, *args, **kwargs)
    monkeypatch.setattr(adamlab.kernels.cpu.Call, "run", counted)
    return calls
