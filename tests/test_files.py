import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from adamlab import distributed, files
from adamlab.distributed import CHECKPOINT_FOLDER
from adamlab.files import FRESH_S, PNG, atomic_write, check_output, check_outputs
from adamlab.lab.training import CHECKPOINT_FILE


def test_a_write_that_fails_leaves_the_old_file_and_no_debris(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"old and complete")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path) as file:
            file.write(b"new but only ha")
            raise KeyboardInterrupt  # Ctrl-C in the middle of a write
    assert path.read_bytes() == b"old and complete"
    assert list(tmp_path.iterdir()) == [path]


def test_a_write_that_succeeds_replaces_the_file(tmp_path):
    path = tmp_path / "plot.png"
    with atomic_write(path) as file:
        file.write(b"picture")
    assert path.read_bytes() == b"picture" and list(tmp_path.iterdir()) == [path]


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        with atomic_write(tmp_path / "absent" / "file.pt"):
            pass


def test_a_new_file_gets_the_usual_mode_and_a_replaced_one_keeps_its_own(tmp_path):
    mask = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "new.png") as file:
            file.write(b"picture")
        assert stat.S_IMODE((tmp_path / "new.png").stat().st_mode) == 0o640  # 0666 less the mask
        kept = tmp_path / "kept.png"
        kept.write_bytes(b"old")
        kept.chmod(0o604)
        with atomic_write(kept) as file:
            file.write(b"new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604
    finally:
        os.umask(mask)


WRITER = """
import sys, torch
from adamlab.files import atomic_write
generation = 0
while True:
    generation += 1
    with atomic_write(sys.argv[1]) as file:
        torch.save({"generation": generation, "weights": torch.full((1_000_000,), float(generation))}, file)
    if generation == 1:
        print("written", flush=True)
"""


def test_a_writer_killed_mid_write_leaves_a_whole_checkpoint(tmp_path):
    """SIGKILL gives no chance to clean up: what is at the path must still be one whole write."""
    path = tmp_path / "checkpoint.pt"
    for delay in (0.0, 0.05, 0.2):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert writer.stdout.readline() == "written\n"
        time.sleep(delay)
        writer.kill()
        writer.wait()
        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["generation"] >= 1
        assert torch.equal(checkpoint["weights"], torch.full((1_000_000,), float(checkpoint["generation"])))


# --- what an output may replace ------------------------------------------------------------------

def adamlab_png(path):
    """A PNG as adamlab draws it (marked), through the plots' own writer."""
    from adamlab.lab.plots import plt, save_png

    figure, _ = plt.subplots(figsize=(1, 1))
    save_png(figure, path)
    return path


def foreign_png(path):
    """A PNG that adamlab did not draw: matplotlib's own mark, not adamlab's."""
    from adamlab.lab.plots import plt

    figure, _ = plt.subplots(figsize=(1, 1))
    figure.savefig(path)
    plt.close(figure)
    return path


def test_an_output_may_not_be_an_input_or_another_output_however_it_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "names.txt").write_text("anna\nbob\n")
    (tmp_path / "link.txt").symlink_to(tmp_path / "names.txt")
    os.link(tmp_path / "names.txt", tmp_path / "hard.txt")
    (tmp_path / "run").mkdir()
    for output, given in [("names.txt", "names.txt"), ("./names.txt", "names.txt"), ("link.txt", "names.txt"),
                          ("hard.txt", "names.txt"), (str(tmp_path / "names.txt"), "./names.txt")]:
        with pytest.raises(ValueError, match=f"--plot {re.escape(str(Path(output)))} is the same path as --data "):
            check_outputs([("--plot", output, PNG)], inputs=[("--data", given)])
    with pytest.raises(ValueError, match="--save run holds --data run/names.txt"):
        check_outputs([("--save", "run", CHECKPOINT_FOLDER)], inputs=[("--data", "run/names.txt")])
    with pytest.raises(ValueError, match="--save run holds --plot run/x.png"):
        check_outputs([("--save", "run", CHECKPOINT_FOLDER), ("--plot", "run/x.png", PNG)])
    with pytest.raises(ValueError, match="--plot run/x.png lies inside --resume run"):
        check_outputs([("--plot", "run/x.png", PNG)], inputs=[("--resume", "run")])
    with pytest.raises(ValueError, match="--save x is the same path as --plot x"):
        check_outputs([("--save", "x", CHECKPOINT_FILE), ("--plot", "./x", PNG)])
    # a run continued into its own checkpoint; and paths left out (None)
    check_outputs([("--save", "run.pt", CHECKPOINT_FILE), ("--plot", None, PNG)],
                  inputs=[("--resume", "./run.pt"), ("--data", None)], may_share=[("--save", "--resume")])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hard.txt", "link.txt", "names.txt", "run"]


def test_only_an_earlier_output_of_the_same_kind_may_be_replaced(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("the user's")
    os.mkfifo(tmp_path / "fifo")
    refused = {
        "folder": ("--plot", tmp_path / "folder", PNG, "is a folder, not a file"),
        "file where a folder goes": ("--save", tmp_path / "notes.txt", CHECKPOINT_FOLDER, "is a file, not a folder"),
        "a text file": ("--save", tmp_path / "notes.txt", CHECKPOINT_FILE,
                        "is not a checkpoint file adamlab saved; adamlab replaces only what it wrote itself"),
        "a pipe": ("--plot", tmp_path / "fifo", PNG, "is not a PNG picture adamlab drew"),  # and does not block
        "someone's PNG": ("--plot", foreign_png(tmp_path / "photo.png"), PNG, "is not a PNG picture adamlab drew"),
        "a PNG as a checkpoint": ("--save", adamlab_png(tmp_path / "drawn.png"), CHECKPOINT_FILE,
                                  "is not a checkpoint file adamlab saved"),
        "a user's folder": ("--save", tmp_path / "folder", CHECKPOINT_FOLDER, "is not a checkpoint folder adamlab saved"),
        "nowhere": ("--plot", tmp_path / "absent" / "x.png", PNG, "absent is not a directory"),
    }
    for option, path, kind, message in refused.values():
        with pytest.raises(ValueError, match=f"^{option} {re.escape(str(path))}: .*{message}"):
            check_outputs([(option, path, kind)])
    check_output(adamlab_png(tmp_path / "loss.png"), PNG)  # adamlab's own: may be replaced
    check_output(tmp_path / "new.png", PNG)  # nothing there
    assert (tmp_path / "notes.txt").read_text() == "the user's"


def test_a_folders_partial_twin_must_be_adamlabs_too(tmp_path):
    run = tmp_path / "run"
    (tmp_path / "run.partial").mkdir()
    (tmp_path / "run.partial" / "mine.txt").write_text("the user's")
    with pytest.raises(ValueError, match=r"run.partial, where the new folder is written first, is not a checkpoint"):
        check_output(run, CHECKPOINT_FOLDER, "--save")
    (tmp_path / "run.partial" / "mine.txt").unlink()
    for name in (distributed.MARKER, "__0_0.distcp", ".metadata"):  # what a killed writer leaves
        (tmp_path / "run.partial" / name).write_text("half")
    check_output(run, CHECKPOINT_FOLDER, "--save")


def test_a_killed_writers_temporary_is_removed_but_a_live_writers_is_not(tmp_path):
    path = tmp_path / "plot.png"
    stale = tmp_path / ".plot.png.abcd1234.partial"
    stale.write_bytes(b"half of a picture")  # left by a writer killed mid-write: nobody holds it
    os.utime(stale, (time.time() - 2 * FRESH_S,) * 2)  # a while ago: a temporary just made may be unlocked yet
    just_made = tmp_path / ".plot.png.efgh5678.partial"  # a writer's that has not locked it yet
    just_made.write_bytes(b"")
    someone_elses = tmp_path / ".plot.png.notmine.partial"  # not a name atomic_write gives
    someone_elses.write_bytes(b"keep")
    with atomic_write(path) as outer:
        outer.write(b"first")
        live = next(tmp_path.glob(".plot.png.*.partial"), None)
        with atomic_write(path) as inner:  # a second writer of the same path meanwhile
            inner.write(b"second")
        assert (tmp_path / live.name).exists()  # the first writer's file survived the second's cleaning
    assert path.read_bytes() == b"first" and not stale.exists() and someone_elses.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".plot.png.efgh5678.partial", ".plot.png.notmine.partial",
                                                          "plot.png"]


def test_a_symlinked_output_keeps_its_link(tmp_path):
    target = tmp_path / "real.png"
    target.write_bytes(b"old")
    (tmp_path / "link.png").symlink_to(target)
    with atomic_write(tmp_path / "link.png") as file:
        file.write(b"new")
    assert (tmp_path / "link.png").is_symlink() and target.read_bytes() == b"new"


def test_replacing_a_folder_puts_the_old_one_back_when_the_new_cannot_go_in(tmp_path, monkeypatch):
    old, new = tmp_path / "page", tmp_path / "new"
    for folder, text in ((old, "old"), (new, "new")):
        folder.mkdir()
        (folder / "index.html").write_text(text)
    real = os.replace

    def refusing(source, target):
        if Path(source) == new:
            raise PermissionError(13, "Permission denied")
        return real(source, target)

    monkeypatch.setattr(os, "replace", refusing)
    with pytest.raises(PermissionError):
        files.replace_folder(new, old)
    assert (old / "index.html").read_text() == "old" and (new / "index.html").read_text() == "new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["new", "page"]  # nothing aside left


def test_replacing_a_folder_replaces_another_writers_that_arrived_in_between(tmp_path, monkeypatch):
    old, new, other = tmp_path / "page", tmp_path / "new", tmp_path / "other"
    for folder, text in ((old, "old"), (new, "new"), (other, "other")):
        folder.mkdir()
        (folder / "index.html").write_text(text)
    real, arrived = os.replace, []

    def racing(source, target):  # the other writer's folder lands just before ours, once
        if Path(source) == new and not arrived:
            arrived.append(real(other, target))
        return real(source, target)

    monkeypatch.setattr(os, "replace", racing)
    files.replace_folder(new, old)
    assert arrived and (old / "index.html").read_text() == "new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["page"]
