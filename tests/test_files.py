import os
import stat
import subprocess
import sys
import time

import pytest
import torch

from adamlab.files import atomic_write


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
