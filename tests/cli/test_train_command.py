"""``adamlab train`` as a person runs it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from adamlab.cli import main
from adamlab.cli import train as train_cli
from adamlab.lab.training import RECIPES, TrainConfig, Training

QUICK = ["train", "--recipe", "microgpt", "--steps", "30", "--eval-every", "10"]


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_json_summary_and_plot(capsys, tmp_path):
    plot = tmp_path / "loss.png"
    status, out, _ = run(capsys, *QUICK, "--json", "--plot", str(plot), "--samples", "4")
    summary = json.loads(out)
    assert status == 0
    for key in ("final_train_loss", "final_val_loss", "steps", "seconds", "tokens_per_s", "samples"):
        assert key in summary
    assert summary["steps"] == 30 and len(summary["samples"]) == 4
    assert summary["final_val_loss"] < 3.0 and summary["plot"] == str(plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tables_samples_and_the_split_of_parameters(capsys, tmp_path):
    status, out, _ = run(capsys, *QUICK, "--plot", str(tmp_path / "loss.png"))
    assert status == 0
    for text in ("validation loss", "tokens/s", "samples:", "matrices", "norm gains", "4,647 training names"):
        assert text in out


def test_compare_settings_runs_each_and_labels_it(capsys, tmp_path):
    status, out, _ = run(capsys, *QUICK, "--dtype", "bfloat16", "--compare", "dtype=float32",
                         "--compare", "rounding=nearest", "--json", "--plot", str(tmp_path / "three.png"))
    summary = json.loads(out)
    assert status == 0 and len(summary["compare"]) == 2 and (tmp_path / "three.png").exists()
    losses = [summary["final_val_loss"]] + [each["final_val_loss"] for each in summary["compare"]]
    assert len(set(losses)) == 3  # three different runs
    assert train_cli._label(TrainConfig(dtype="bfloat16"), None) == "adamw, bfloat16 (stochastic rounding)"
    assert train_cli._label(TrainConfig(), {"dtype": "float32", "lr": 0.1}) == "dtype=float32, lr=0.1"


def test_compare_adam_with_torch_adam_in_one_plot(capsys, tmp_path):
    status, out, _ = run(capsys, *QUICK, "--optimizer", "adam", "--compare", "torch-adam", "--json",
                         "--plot", str(tmp_path / "both.png"))
    summary = json.loads(out)
    assert status == 0 and summary["optimizer"] == "adam" and summary["compare"][0]["optimizer"] == "torch-adam"
    assert summary["compare"][0]["final_val_loss"] == pytest.approx(summary["final_val_loss"], rel=1e-5)
    assert (tmp_path / "both.png").exists()


def test_training_on_a_names_file(capsys, tmp_path):
    data = tmp_path / "names.txt"
    data.write_text("\n".join(["ana", "bea", "cy", "dee", "eve", "flo", "gus", "hal", "ivy", "jo"] * 5))
    status, out, _ = run(capsys, *QUICK, "--data", str(data), "--json", "--no-plot")
    summary = json.loads(out)
    assert status == 0 and summary["data"] == str(data) and summary["plot"] is None


BAD = {
    "missing data": (["--data", "/nonexistent/names.txt"], "/nonexistent/names.txt: no such file"),
    "empty data": (["--data", "{tmp}/empty.txt"], "empty.txt: holds 0 names"),
    "negative lr": (["--lr", "-0.5"], "--lr must be >= 0, got -0.5"),
    "zero steps": (["--steps", "0"], "steps must be a whole number >= 1, got 0"),
    "bad clip": (["--clip", "-1"], "clip must be >= 0"),
    "min_lr above lr": (["--recipe", "default", "--min-lr", "1.0"], "min_lr must be in [0, lr="),
    "unknown schedule": (["--schedule", "sometimes"], "argument --schedule: invalid choice"),
    "unknown optimizer": (["--optimizer", "lion9"], "argument --optimizer: invalid choice"),
    "compare and save": (["--compare", "adam", "--save", "{tmp}/run.pt"], "cannot be combined with --save"),
    "compare unknown": (["--compare", "adam9"], "unknown optimizer 'adam9'; choose from sgd"),
    "compare setting": (["--compare", "colour=red"], "unknown setting 'colour' in 'colour=red'; choose from optimizer"),
    "compare value": (["--compare", "dtype=float16"], "dtype must be one of float32, bfloat16, got 'float16'"),
    "compare number": (["--compare", "lr=fast"], "lr='fast' is not a float"),
    "unknown dtype": (["--dtype", "float16"], "argument --dtype: invalid choice"),
    "bf16 without rounding": (["--dtype", "bfloat16", "--optimizer", "sgd"], "sgd has no stochastic rounding"),
    "resume with settings": (["--resume", "{tmp}/run.pt", "--lr", "0.1"], "drop --lr"),
    "resume missing": (["--resume", "{tmp}/absent.pt"], "absent.pt: no such checkpoint"),
    "plot nowhere": (["--plot", "{tmp}/no/such/dir/plot.png"], "is not a directory"),
    "bad device": (["--device", "nonsense"], "--device nonsense is not usable here"),
    "no processes": (["--nproc", "0"], "--nproc must be >= 1, got 0"),
    "fewer names than ranks": (["--nproc", "2"], "--nproc 2 needs a batch of at least 2 names; --batch-size is 1"),
    "nproc resumes folders": (["--nproc", "2", "--resume", "{tmp}/run.pt"], "run.pt is not one (resume a checkpoint file"),
    "not a checkpoint folder": (["--resume", "{tmp}"], "not a complete adamlab checkpoint (no adamlab-checkpoint.json)"),
    "nproc on another device": (["--nproc", "2", "--batch-size", "2", "--device", "meta"],
                                "--nproc trains on cpu, or on cuda with rank r on cuda:r; not on meta"),
    # met by the ranks, reported by rank 0
    "empty data on ranks": (["--nproc", "2", "--batch-size", "2", "--data", "{tmp}/empty.txt"], "empty.txt: holds 0 names"),
    "negative lr on ranks": (["--nproc", "2", "--batch-size", "2", "--lr", "-0.5"], "--lr must be >= 0, got -0.5"),
}


@pytest.mark.parametrize("extra, message", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, extra, message):
    (tmp_path / "empty.txt").write_text("")
    argv = ["train"] + [part.replace("{tmp}", str(tmp_path)) for part in extra]
    if "--recipe" not in argv:
        argv += ["--recipe", "microgpt"] if "--resume" not in argv else []
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, err
    assert err.count("\n") == 1 and message.replace("{tmp}", str(tmp_path)) in err
    assert "Traceback" not in err
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*partial"))


def adamlab(*argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "adamlab", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_ctrl_c_saves_a_whole_checkpoint_that_resumes_to_the_unbroken_result(tmp_path):
    checkpoint, steps = tmp_path / "run.pt", 400
    settings = ["--recipe", "microgpt", "--steps", str(steps), "--eval-every", "20"]
    process = adamlab("train", *settings, "--save", str(checkpoint), "--json", "--no-plot")
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    stopped_at = json.loads(out)["steps"]
    assert 20 <= stopped_at < steps
    assert f"stopped at step {stopped_at} of {steps}; resume with: adamlab train --resume" in err
    assert [path.name for path in tmp_path.iterdir()] == ["run.pt"]  # nothing half-written beside it

    resumed = adamlab("train", "--resume", str(checkpoint), "--json", "--no-plot")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    unbroken = Training(RECIPES["microgpt"].replace(steps=steps, eval_every=20))
    unbroken.run()
    result = json.loads(out)
    assert result["steps"] == steps
    assert result["final_val_loss"] == unbroken.history.val_loss[-1]
    assert result["final_train_loss"] == unbroken.history.train_loss[-1]


# --- on several processes ----------------------------------------------------------------------

SHORT = ["train", "--steps", "30", "--eval-every", "10", "--samples", "3"]


def test_nproc_trains_the_run_of_one_process(capfd, tmp_path):
    """Two ranks, each with half of every batch and of the state: the numbers of one process,
    but for the order of the gradients' sums; the same summary and the plot. (The ranks print
    to the process's own output: capfd.)"""
    assert main([*SHORT, "--json", "--no-plot"]) == 0
    alone = json.loads(capfd.readouterr().out)
    plot = tmp_path / "loss.png"
    assert main([*SHORT, "--nproc", "2", "--json", "--plot", str(plot)]) == 0
    sharded = json.loads(capfd.readouterr().out)
    assert sharded.keys() == alone.keys()
    for key in ("final_train_loss", "final_val_loss"):
        assert sharded[key] == pytest.approx(alone[key], rel=1e-5)
    assert (sharded["steps"], sharded["parameters"], sharded["param_groups"]) == (
        alone["steps"], alone["parameters"], alone["param_groups"])
    assert len(sharded["samples"]) == 3 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # tables, and a comparison run on ranks too (8-bit state, sharded)
    assert main([*SHORT, "--steps", "10", "--nproc", "2", "--optimizer", "adam", "--compare", "adamw8bit",
                 "--no-plot"]) == 0
    out = capfd.readouterr().out
    for text in ("validation loss", "adam samples:", "adamw8bit samples:", "4,647 training names"):
        assert text in out


def test_ctrl_c_on_ranks_saves_a_folder_that_resumes_on_other_ranks_or_one_process(tmp_path):
    checkpoint, steps = tmp_path / "run", 200
    settings = ["--steps", str(steps), "--eval-every", "20", "--no-plot", "--json"]
    process = adamlab("train", "--nproc", "2", *settings, "--save", str(checkpoint), start_new_session=True)
    deadline = time.monotonic() + 120
    while not (checkpoint / "adamlab-checkpoint.json").exists() and time.monotonic() < deadline \
            and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: to the launcher and every rank
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    stopped_at = json.loads(out)["steps"]
    assert 20 <= stopped_at < steps
    assert f"stopped at step {stopped_at} of {steps}; resume with: adamlab train --resume" in err
    assert [path.name for path in tmp_path.iterdir()] == ["run"]  # nothing half-written beside it

    unbroken = Training(RECIPES["default"].replace(steps=steps, eval_every=20))
    unbroken.run()
    in_one_process = Training.resume(checkpoint)
    in_one_process.run()
    assert in_one_process.history.val_loss[-1] == pytest.approx(unbroken.history.val_loss[-1], rel=1e-4)

    resumed = adamlab("train", "--resume", str(checkpoint), "--nproc", "3", "--json", "--no-plot")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    result = json.loads(out)
    assert result["steps"] == steps
    assert result["final_val_loss"] == pytest.approx(unbroken.history.val_loss[-1], rel=1e-4)
    assert result["final_train_loss"] == pytest.approx(unbroken.history.train_loss[-1], rel=1e-4)
