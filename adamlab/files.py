"""Writing files so that an interrupted write never leaves half a file behind."""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | Path):
    """Open a temporary binary file beside ``path``; on success it replaces ``path`` in one rename.

    On any error, Ctrl-C included, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"{path}: cannot write there, {path.parent} is not a directory")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        # mkstemp's file is private (0600); give the new file the mode a plain open() would, or
        # the mode of the file it replaces
        os.chmod(descriptor, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
