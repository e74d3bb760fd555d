"""``adamlab train`` as a person runs it."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from adamlab import distributed
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


def test_a_compared_lower_lr_takes_its_own_floor(capsys):
    """warmup-cosine's floor is a tenth of the compared run's lr, as if given alone (it was the
    first run's floor, above the new lr, and refused)."""
    status, out, err = run(capsys, "train", "--steps", "2", "--eval-every", "2", "--compare", "lr=0.0001", "--json",
                           "--no-plot")
    assert status == 0, err
    assert json.loads(out)["compare"][0]["steps"] == 2


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
    "zero steps": (["--steps", "0"], "--steps must be a whole number from 1 to 1,000,000,000, got 0"),
    "bad clip": (["--clip", "-1"], "--clip must be a finite number >= 0"),
    "min_lr above lr": (["--recipe", "default", "--min-lr", "1.0"], "--min-lr must be in [0, lr=0.003], got 1.0"),
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
    "plot where nothing can be written": (["--plot", "/proc/adamlab.png"], "--plot /proc/adamlab.png: cannot write in /proc"),
    "save where nothing can be written": (["--save", "/proc/run.pt"], "--save /proc/run.pt: cannot write in /proc"),
    "bad device": (["--device", "nonsense"], "--device nonsense is not usable here"),
    "no processes": (["--nproc", "0"], "--nproc must be a whole number from 1 to 64, got 0"),
    "fewer names than ranks": (["--nproc", "2"], "--nproc 2 needs a batch of at least 2 names; --batch-size is 1"),
    "nproc resumes folders": (["--nproc", "2", "--resume", "{tmp}/run.pt"], "run.pt is not one (resume a checkpoint file"),
    "not a checkpoint folder": (["--resume", "{tmp}"], "not a complete adamlab checkpoint (no adamlab-checkpoint.json)"),
    "nproc on another device": (["--nproc", "2", "--batch-size", "2", "--device", "meta"],
                                "--nproc trains on cpu, or on cuda with rank r on cuda:r; not on meta"),
    # refused before the ranks start
    "empty data on ranks": (["--nproc", "2", "--batch-size", "2", "--data", "{tmp}/empty.txt"], "empty.txt: holds 0 names"),
    "negative lr on ranks": (["--nproc", "2", "--batch-size", "2", "--lr", "-0.5"], "--lr must be >= 0, got -0.5"),
    "huge batch on ranks": (["--nproc", "2", "--batch-size", "5000"], "--batch-size must be at most 4,647"),
    "a compared run's batch on ranks": (["--nproc", "2", "--batch-size", "2", "--compare", "batch_size=5000"],
                                        "--batch-size must be at most 4,647"),
    # numbers out of range: one line naming the option, before any work
    "seed beyond 64 bits": (["--seed", str(2**64)], "--seed must be a whole number from 0 to 18,446,744,073,709,551,615, "
                                                    "got 18446744073709551616"),
    "negative seed": (["--seed", "-1"], "--seed must be a whole number from 0"),
    "huge steps": (["--steps", str(10**20)], "--steps must be a whole number from 1 to 1,000,000,000"),
    "huge eval-every": (["--eval-every", str(10**20)], "--eval-every must be a whole number from 1 to 1,000,000,000"),
    "huge warmup": (["--warmup", str(10**20)], "--warmup must be a whole number from 0 to 1,000,000,000"),
    "huge batch": (["--batch-size", "100000000"], "--batch-size must be at most 4,647, the number of training names, "
                                                  "got 100000000"),
    "batch beyond a small file": (["--data", "{tmp}/five.txt", "--batch-size", "5"], "--batch-size must be at most 4"),
    "huge samples": (["--samples", str(10**11)], "--samples must be a whole number from 0 to 10,000"),
    "negative samples": (["--samples", "-1"], "--samples must be a whole number from 0 to 10,000, got -1"),
    "huge nproc": (["--nproc", "100000"], "--nproc must be a whole number from 1 to 64, got 100000"),
    "infinite lr": (["--lr", "inf"], "--lr must be a finite number >= 0, got inf"),
    "lr not a number": (["--lr", "nan"], "--lr must be a finite number >= 0, got nan"),
    "infinite weight decay": (["--weight-decay", "1e400"], "--weight-decay must be a finite number >= 0, got inf"),
    "infinite clip": (["--clip", "inf"], "--clip must be a finite number >= 0 (0: no clipping), got inf"),
    "clip not a number": (["--clip", "nan"], "--clip must be a finite number >= 0"),
    "min-lr not a number": (["--recipe", "default", "--min-lr", "nan"], "--min-lr must be in [0, lr=0.003], got nan"),
    "compared seed": (["--compare", f"seed={2**64}"], "--seed must be a whole number from 0"),
    # data that is no names file: one line, never a hang or a flood of memory
    "data is a device": (["--data", "/dev/zero"], "--data /dev/zero: is not a regular file (a device, pipe or socket)"),
    "data is a pipe": (["--data", "{tmp}/pipe"], "pipe: is not a regular file (a device, pipe or socket)"),
    "data is a socket": (["--data", "{tmp}/socket"], "socket: is not a regular file (a device, pipe or socket)"),
    "data is a folder": (["--data", "{tmp}"], "is a directory, not a names file"),
    "data too large": (["--data", "{tmp}/large.txt"], "large.txt: is 16,777,217 bytes; a names file may hold at most "
                                                     "16,777,216 (16 MiB)"),
    # --resume continues a run with its own settings: the recipe too
    "resume with the default recipe": (["--resume", "{tmp}/run.pt", "--recipe", "default"], "drop --recipe"),
    "resume with a recipe and settings": (["--resume", "{tmp}/run.pt", "--recipe", "microgpt", "--lr", "0.1"],
                                          "drop --recipe, --lr"),
}


@pytest.mark.parametrize("extra, message", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, extra, message):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "five.txt").write_text("ana\nbea\ncy\ndee\neve\n")
    os.mkfifo(tmp_path / "pipe")  # no writer: opening it to read would wait forever
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tmp_path / "socket"))
    with open(tmp_path / "large.txt", "wb") as file:  # one byte over the most, without writing it all
        file.truncate(16 * 2**20 + 1)
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


# --- outputs replace only adamlab's own, never an input -------------------------------------------

def users_files(tmp_path):
    """What a user keeps beside a run: names, a folder of notes, a text file, a picture, and a
    checkpoint and a picture of an earlier run."""
    (tmp_path / "names.txt").write_text("\n".join(["ana", "bea", "cy", "dee", "eve", "flo", "gus", "hal"] * 5))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("the user's")
    (tmp_path / "plain.txt").write_text("the user's")
    from adamlab.lab.plots import plt
    figure, _ = plt.subplots(figsize=(1, 1))
    figure.savefig(tmp_path / "photo.png")  # matplotlib's, not adamlab's
    plt.close(figure)
    assert main([*QUICK, "--steps", "2", "--save", str(tmp_path / "run.pt"), "--plot", str(tmp_path / "loss.png"),
                 "--json"]) == 0
    return {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}


REFUSED = {
    "save over the data": (["--data", "names.txt", "--save", "names.txt"], "--save names.txt is the same path as --data"),
    "plot over the data": (["--data", "names.txt", "--plot", "./names.txt"], "--plot names.txt is the same path as --data"),
    "plot over the resumed run": (["--resume", "run.pt", "--plot", "run.pt"], "--plot run.pt is the same path as --resume"),
    "save and plot alike": (["--save", "x", "--plot", "x"], "--save x is the same path as --plot x"),
    "save into a folder": (["--save", "notes"], "--save notes: is a folder, not a file"),
    "plot into a folder": (["--plot", "notes"], "--plot notes: is a folder, not a file"),
    "save over a text file": (["--save", "plain.txt"], "--save plain.txt: is not a checkpoint file adamlab saved; "
                                                       "adamlab replaces only what it wrote itself"),
    "plot over a user's picture": (["--plot", "photo.png"], "--plot photo.png: is not a PNG picture adamlab drew"),
    "plot over a checkpoint": (["--plot", "run.pt"], "--plot run.pt: is not a PNG picture adamlab drew"),
    "save over a picture": (["--save", "loss.png"], "--save loss.png: is not a checkpoint file adamlab saved"),
    "ranks save over a folder": (["--nproc", "2", "--batch-size", "2", "--save", "notes"],
                                 "--save notes: is not a checkpoint folder adamlab saved"),
    "ranks save over a file": (["--nproc", "2", "--batch-size", "2", "--save", "plain.txt"],
                               "--save plain.txt: is a file, not a folder"),
    "ranks save over a checkpoint file": (["--nproc", "2", "--batch-size", "2", "--save", "run.pt"],
                                          "--save run.pt: is a file, not a folder"),
}


def test_outputs_that_would_lose_something_are_refused_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = users_files(tmp_path)
    capsys.readouterr()
    for extra, message in REFUSED.values():
        argv = ["train", *extra] if "--resume" in extra else [*QUICK, *extra]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before, extra
    # but a run's own checkpoint and picture are replaced by the next run's, and a run continues into its own
    assert main(["train", "--resume", "run.pt", "--save", "run.pt", "--plot", "loss.png", "--json"]) == 0
    capsys.readouterr()
    assert main([*QUICK, "--steps", "3", "--save", "run.pt", "--plot", "loss.png", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    assert (tmp_path / "photo.png").read_bytes() == before[tmp_path / "photo.png"]


def test_race_refuses_a_folder_or_a_users_file_for_its_picture(capsys, tmp_path):
    (tmp_path / "pictures").mkdir()
    (tmp_path / "notes.txt").write_text("the user's")
    for out, message in [(tmp_path / "pictures", "is a folder, not a file"),
                         (tmp_path / "notes.txt", "is not a PNG picture adamlab drew")]:
        assert main(["race", "quadratic", "--out", str(out)]) == 2
        assert f"adamlab race: error: --out {out}: {message}" in capsys.readouterr().err
    assert main(["race", "quadratic", "--out", str(tmp_path / "race.png")]) == 0
    assert main(["race", "quadratic", "--out", str(tmp_path / "race.png")]) == 0  # its own: replaced
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt", "pictures", "race.png"]


def test_a_damaged_checkpoint_is_one_line_naming_it_and_nothing_trains(capsys, tmp_path):
    checkpoint = tmp_path / "run.pt"
    assert main([*QUICK, "--save", str(checkpoint), "--no-plot", "--json"]) == 0
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2:len(data) // 2 + 8] = bytes(8)  # eight bytes inside a tensor's record
    checkpoint.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["train", "--resume", str(checkpoint), "--save", str(checkpoint), "--no-plot"]) == 2
    out, err = capsys.readouterr()
    assert err == f"adamlab train: error: {checkpoint}: damaged (its contents do not match the sha256 saved with them)\n"
    assert out == "" and checkpoint.read_bytes() == bytes(data)


# --- runs that diverge -----------------------------------------------------------------------------

DIVERGING = ["train", "--recipe", "microgpt", "--optimizer", "sgd", "--lr", "10", "--steps", "20", "--eval-every", "10"]


def test_a_diverged_run_reports_where_and_still_writes_its_summary_and_plot(capsys, tmp_path):
    plot = tmp_path / "loss.png"
    status, out, err = run(capsys, *DIVERGING, "--compare", "lr=0.01", "--json", "--plot", str(plot))
    assert status == 3
    summary = json.loads(out)  # strict JSON: a loss that is not a number is null
    diverged = summary["diverged_at_step"]
    assert summary["steps"] == diverged < 20 and summary["samples"] == []
    compared = summary["compare"][0]  # the other run still trains, to the end
    assert compared["diverged_at_step"] is None and compared["steps"] == 20 and len(compared["samples"]) == 10
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert err.splitlines()[-1] == (f"adamlab train: sgd diverged: its loss was not a finite number at step "
                                    f"{diverged}; stopped there")

    status, out, err = run(capsys, *DIVERGING, "--on-divergence", "finish", "--no-plot")  # tables, to the end
    assert status == 3 and "samples: none (the run diverged at step" in out
    assert "trained on to step 20 as --on-divergence finish asks" in err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "exit status: 0 when every run finished; 3 when a run diverged" in " ".join(capsys.readouterr().out.split())


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


def test_ctrl_c_on_ranks_saves_a_folder_that_resumes_on_other_ranks_or_one_process(tmp_path, capsys):
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

    # a copy with eight bytes flipped in one rank's file: refused by its digest, before any rank starts
    damaged = tmp_path / "damaged"
    shutil.copytree(checkpoint, damaged)
    shard = damaged / "__1_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2:len(data) // 2 + 8] = bytes(8)
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["train", "--resume", str(damaged), "--no-plot"]) == 2
    assert capsys.readouterr().err == (f"adamlab train: error: {shard}: damaged (its sha256 is not the one saved "
                                       f"with the checkpoint)\n")


def test_a_run_on_ranks_that_diverges_stops_every_rank_at_the_same_step(capfd, tmp_path):
    """Every rank sees the same summed loss, so all stop after the same step (a rank that went
    on alone would wait on its peers' collectives); the checkpoint is the last from before."""
    folder, plot = tmp_path / "run", tmp_path / "loss.png"
    assert main([*DIVERGING, "--nproc", "2", "--batch-size", "2", "--eval-every", "1", "--save", str(folder),
                 "--json", "--plot", str(plot)]) == 3
    summary = json.loads(capfd.readouterr().out)
    diverged = summary["diverged_at_step"]
    assert summary["steps"] == diverged < 20 and summary["samples"] == []
    assert distributed.read_extra(folder)["step"] == diverged - 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
