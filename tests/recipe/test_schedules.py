import math

import pytest
import torch

from adamlab.recipe import drive, linear_decay, warmup_constant, warmup_cosine


def test_linear_decay_runs_from_the_peak_to_zero():
    assert linear_decay(0, lr=0.01, total_steps=1000) == 0.01
    assert linear_decay(500, lr=0.01, total_steps=1000) == pytest.approx(0.005)
    assert linear_decay(999, lr=0.01, total_steps=1000) == pytest.approx(1e-5)  # microgpt's last step
    assert linear_decay(1000, lr=0.01, total_steps=1000) == 0.0
    assert linear_decay(1500, lr=0.01, total_steps=1000) == 0.0


def test_warmup_constant():
    assert warmup_constant(0, lr=1.0, warmup_steps=10) == 0.0
    assert warmup_constant(5, lr=1.0, warmup_steps=10) == 0.5
    assert warmup_constant(10, lr=1.0, warmup_steps=10) == 1.0
    assert warmup_constant(10_000, lr=1.0, warmup_steps=10) == 1.0
    assert warmup_constant(0, lr=1.0, warmup_steps=0) == 1.0


def test_warmup_cosine_boundaries_and_middle():
    settings = dict(lr=1.0, warmup_steps=100, total_steps=1100, min_lr=0.1)
    assert warmup_cosine(0, **settings) == 0.0
    assert warmup_cosine(50, **settings) == pytest.approx(0.5)
    assert warmup_cosine(100, **settings) == 1.0  # the peak at the end of warmup
    assert warmup_cosine(600, **settings) == pytest.approx(0.55)  # halfway down: (1 + 0.1) / 2
    assert warmup_cosine(350, **settings) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine(1100, **settings) == pytest.approx(0.1)
    assert warmup_cosine(5000, **settings) == pytest.approx(0.1)
    values = [warmup_cosine(step, **settings) for step in range(100, 1101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("call, message", [
    (lambda: warmup_cosine(0, lr=1.0, warmup_steps=10, total_steps=100, min_lr=2.0), r"min_lr must be in \[0"),
    (lambda: warmup_cosine(0, lr=-1.0, warmup_steps=10, total_steps=100), "lr must be >= 0"),
    (lambda: linear_decay(0, lr=1.0, total_steps=-5), "total_steps must be a whole number >= 0"),
    (lambda: warmup_constant(0, lr=1.0, warmup_steps=2.5), "warmup_steps must be a whole number"),
])
def test_bad_settings(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_drive_sets_each_steps_learning_rate_through_lambda_lr():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=1.0)
    scheduler = drive(optimizer, warmup_cosine, warmup_steps=2, total_steps=6)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    seen = []
    for _ in range(7):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    expected = [warmup_cosine(step, lr=1.0, warmup_steps=2, total_steps=6) for step in range(7)]
    assert [first for first, _ in seen] == pytest.approx(expected)
    assert [second for _, second in seen] == pytest.approx([value / 2 for value in expected])


def test_a_driven_schedule_resumes_from_its_state_dict():
    def make():
        optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        return optimizer, drive(optimizer, linear_decay, total_steps=10)

    optimizer, scheduler = make()
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    resumed_optimizer, resumed = make()
    resumed.load_state_dict(scheduler.state_dict())
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(0.06)


def test_drive_checks_the_settings_before_touching_the_optimizer():
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="min_lr"):
        drive(optimizer, warmup_cosine, warmup_steps=1, total_steps=10, min_lr=1.0)
    assert optimizer.param_groups[0]["lr"] == 0.1 and "initial_lr" not in optimizer.param_groups[0]
