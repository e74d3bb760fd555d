"""Training the names GPT: the loss falls, runs repeat, resumes are exact, adamlab tracks torch."""

import pickle
import shutil

import pytest
import torch

from adamlab.lab.training import OPTIMIZERS, RECIPES, Training, load_checkpoint
from adamlab.recipe import warmup_cosine

SHORT = RECIPES["microgpt"].replace(steps=60, eval_every=20)


def test_a_short_run_learns():
    run = Training(SHORT)
    run.run()
    history = run.history
    assert history.eval_step == [0, 20, 40, 60]
    assert history.val_loss[0] == pytest.approx(3.3, abs=0.1)  # about ln(27): knowing nothing
    assert history.val_loss[-1] < history.val_loss[0] - 0.5
    summary = run.summary(samples=5)
    assert summary["steps"] == 60 and len(summary["samples"]) == 5
    assert summary["final_val_loss"] == history.val_loss[-1]
    assert summary["tokens_per_s"] > 0 and summary["seconds"] > 0


def test_the_default_recipe_uses_the_standard_recipe():
    run = Training(RECIPES["default"].replace(steps=40, eval_every=40))
    assert type(run.optimizer).__name__ == "AdamW"
    assert [group["weight_decay"] for group in run.optimizer.param_groups] == [0.1, 0.0]
    assert run.config.warmup == 2 and run.config.min_lr == run.config.lr / 10
    run.run()
    peak = RECIPES["default"].lr
    assert run.history.lr[:3] == pytest.approx([0.0, peak / 2, peak])  # warmup from zero
    assert run.history.lr[-1] == pytest.approx(  # the last step, cosine almost down to min_lr
        warmup_cosine(39, lr=peak, warmup_steps=2, total_steps=40, min_lr=peak / 10))


def test_the_same_seed_gives_the_same_losses_and_another_seed_does_not():
    runs = [Training(SHORT.replace(seed=seed)) for seed in (5, 5, 6)]
    for run in runs:
        run.run()
    assert runs[0].history.batch_loss == runs[1].history.batch_loss
    assert runs[0].history.val_loss == runs[1].history.val_loss
    assert runs[0].history.batch_loss != runs[2].history.batch_loss


@pytest.mark.parametrize("recipe", ["microgpt", "default"])
def test_a_run_stopped_and_resumed_ends_exactly_where_an_unbroken_run_does(tmp_path, recipe):
    config = RECIPES[recipe].replace(steps=40, eval_every=10)
    unbroken = Training(config)
    unbroken.run()

    first = Training(config)
    first.run(on_step=lambda run: setattr(run, "stop_requested", run.step == 17),
              save_to=tmp_path / "run.pt")
    assert first.step == 17
    resumed = Training.resume(tmp_path / "run.pt")
    assert resumed.step == 17
    resumed.run()
    assert resumed.history.batch_loss == unbroken.history.batch_loss
    assert resumed.history.val_loss == unbroken.history.val_loss
    assert resumed.summary(samples=3)["final_val_loss"] == unbroken.summary(samples=3)["final_val_loss"]
    for a, b in zip(resumed.model.parameters(), unbroken.model.parameters()):
        assert torch.equal(a, b)


def test_adamlab_adamw_and_torch_adamw_draw_the_same_curves():
    config = RECIPES["default"].replace(steps=150, eval_every=25, warmup=20)
    ours, theirs = Training(config), Training(config.replace(optimizer="torch-adamw"))
    ours.run()
    theirs.run()
    assert type(theirs.optimizer) is torch.optim.AdamW
    # Identical but for float32 rounding order inside the step.
    assert ours.history.batch_loss == pytest.approx(theirs.history.batch_loss, rel=1e-4)
    assert ours.history.val_loss == pytest.approx(theirs.history.val_loss, rel=1e-5)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_trains(optimizer):
    run = Training(SHORT.replace(optimizer=optimizer, steps=2, eval_every=2))
    run.run()
    assert run.step == 2 and all(loss == loss for loss in run.history.batch_loss)


def test_muon_trains_the_hidden_matrices_beside_adamw_and_resumes_exactly(tmp_path):
    config = SHORT.replace(optimizer="muon", steps=20, eval_every=10, weight_decay=0.1)
    unbroken = Training(config)
    muon, adamw = unbroken.optimizer.optimizers
    hidden = {id(param) for block in unbroken.model.blocks
              for param in (block.attention.qkv.weight, block.attention.proj.weight, block.mlp[0].weight,
                            block.mlp[2].weight)}
    assert {id(param) for group in muon.param_groups for param in group["params"]} == hidden
    assert [group["weight_decay"] for group in adamw.param_groups] == [config.weight_decay, 0.0]  # embeddings, head; norms
    unbroken.run()
    first = Training(config)
    first.run(on_step=lambda run: setattr(run, "stop_requested", run.step == 7), save_to=tmp_path / "run.pt")
    resumed = Training.resume(tmp_path / "run.pt")
    resumed.run()
    assert resumed.history.val_loss == unbroken.history.val_loss
    assert unbroken.history.val_loss[-1] < unbroken.history.val_loss[0]


def test_invalid_settings_are_refused_before_training():
    with pytest.raises(ValueError, match="steps must be a whole number from 1 to 1,000,000,000, got 0"):
        SHORT.replace(steps=0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        SHORT.replace(optimizer="nope")
    with pytest.raises(ValueError, match="warmup must be"):
        SHORT.replace(warmup=-1)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        Training(SHORT.replace(lr=-1.0))
    with pytest.raises(ValueError, match=r"betas\[0\] must be in \[0, 1\)"):
        Training(SHORT.replace(betas=(1.5, 0.9)))


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoints_load_without_running_code_and_refuse_foreign_files(tmp_path, capsys):
    hostile = tmp_path / "hostile.pt"
    torch.save({"format": "adamlab-train-1", "payload": Exploit()}, hostile)
    with pytest.raises(ValueError, match="not a readable adamlab checkpoint"):
        load_checkpoint(hostile)
    assert "must never run" not in capsys.readouterr().out

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable adamlab checkpoint"):
        load_checkpoint(garbage)
    other = tmp_path / "other.pt"
    torch.save({"model": {}}, other)
    with pytest.raises(ValueError, match="not an adamlab train checkpoint"):
        load_checkpoint(other)
    with pytest.raises(ValueError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    assert pickle  # the hostile file above is a real pickle with a callable in it


def test_resuming_on_changed_data_is_refused(tmp_path):
    data = tmp_path / "names.txt"
    data.write_text("anna\nbob\ncarl\n")
    run = Training(SHORT.replace(data=str(data), steps=2, eval_every=1))
    run.run(save_to=tmp_path / "run.pt")
    data.write_text("anna\nbob\nzed\n")
    with pytest.raises(ValueError, match="no longer gives the vocabulary"):
        Training.resume(tmp_path / "run.pt")


# --- runs that diverge ---------------------------------------------------------------------------

DIVERGING = SHORT.replace(optimizer="sgd", lr=10.0, steps=30, eval_every=1)


def test_a_diverged_run_stops_before_the_update_and_writes_no_checkpoint_after_it(tmp_path):
    run = Training(DIVERGING)
    run.run(save_to=tmp_path / "run.pt")
    diverged = run.history.diverged_at
    assert diverged is not None and run.step == diverged < DIVERGING.steps  # stopped there
    summary = run.summary(samples=5)  # sampling from it does not crash: there are none
    assert summary["diverged_at_step"] == diverged and summary["samples"] == []
    saved = Training.resume(tmp_path / "run.pt")  # the last checkpoint is from before the divergence
    assert saved.step == diverged - 1 and saved.history.diverged_at is None
    assert all(torch.isfinite(param).all() for param in saved.model.parameters())


def test_a_diverged_run_finishes_when_asked():
    run = Training(DIVERGING.replace(steps=12, eval_every=6))
    run.stop_on_divergence = False
    run.run()
    assert run.step == 12 and run.history.diverged_at < 12
    assert run.summary(samples=3)["samples"] == []


# --- checkpoints check their contents -------------------------------------------------------------

def flip(path, at: float, count: int = 8) -> None:
    """Flip ``count`` bytes of the file at fraction ``at`` of its length."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + count] = bytes(255 - byte for byte in data[start:start + count])
    path.write_bytes(bytes(data))


def test_a_damaged_checkpoint_is_refused_naming_the_file(tmp_path):
    run = Training(SHORT.replace(steps=2, eval_every=1))
    run.run(save_to=tmp_path / "run.pt")
    for at in (0.3, 0.5, 0.8):  # inside the tensors (model, optimizer, the data order's RNG)
        damaged = tmp_path / f"damaged-{at}.pt"
        shutil.copy(tmp_path / "run.pt", damaged)
        flip(damaged, at)
        with pytest.raises(ValueError, match=rf"{damaged.name}: damaged \(its contents do not match the sha256"):
            Training.resume(damaged)


def test_a_checkpoint_of_the_format_before_digests_still_resumes_and_a_broken_one_is_refused(tmp_path):
    run = Training(SHORT.replace(steps=4, eval_every=2))
    run.run()
    old = {**run.checkpoint(), "format": "adamlab-train-1"}
    torch.save(old, tmp_path / "old.pt")
    assert Training.resume(tmp_path / "old.pt").step == 4
    torch.save({**old, "batches": torch.zeros(3, dtype=torch.uint8)}, tmp_path / "broken.pt")  # a bad RNG record
    with pytest.raises(ValueError, match=r"broken.pt: damaged \(RuntimeError while restoring the run\)"):
        Training.resume(tmp_path / "broken.pt")


def test_only_a_checkpoint_adamlab_saved_is_replaced(tmp_path):
    (tmp_path / "notes.pt").write_text("the user's")
    run = Training(SHORT.replace(steps=2, eval_every=2))
    with pytest.raises(ValueError, match="notes.pt: is not a checkpoint file adamlab saved"):
        run.save(tmp_path / "notes.pt")
    run.save(tmp_path / "run.pt")
    run.run(save_to=tmp_path / "run.pt")  # over its own earlier checkpoint
    assert Training.resume(tmp_path / "run.pt").step == 2 and (tmp_path / "notes.pt").read_text() == "the user's"


def test_settings_out_of_range_name_the_setting():
    for changes, message in [
        ({"seed": 2**64}, "seed must be a whole number from 0 to 18,446,744,073,709,551,615, got 18446744073709551616"),
        ({"seed": -1}, "seed must be a whole number from 0"),
        ({"steps": 10**20}, "steps must be a whole number from 1 to 1,000,000,000"),
        ({"eval_every": 10**10}, "eval_every must be a whole number from 1 to 1,000,000,000"),
        ({"warmup": 10**10}, "warmup must be a whole number from 0 to 1,000,000,000"),
        ({"lr": float("inf")}, "lr must be a finite number >= 0, got inf"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number >= 0, got nan"),
        ({"clip": float("inf")}, "clip must be a finite number >= 0"),
        ({"min_lr": float("nan")}, r"min_lr must be in \[0, lr=0.01\], got nan"),
    ]:
        with pytest.raises(ValueError, match=message):
            SHORT.replace(**changes)
    with pytest.raises(ValueError, match="batch_size must be at most 4,647, the number of training names"):
        Training(SHORT.replace(batch_size=4648))
    with pytest.raises(ValueError, match="samples must be a whole number from 0 to 10,000"):
        Training(SHORT).samples(10**12)
