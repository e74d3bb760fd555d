import pytest

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
