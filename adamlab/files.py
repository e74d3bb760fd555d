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
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
