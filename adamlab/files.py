"""What adamlab writes: files written so that an interrupted write never leaves half a file
behind, and the rule that an output replaces nothing but an earlier output of its own kind.

Every command checks its output paths with :func:`check_outputs` before it starts any work, and
every writer checks its path again with :func:`check_output` just before it writes.
"""

import errno
import fcntl
import glob
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from . import __version__


class Kind(NamedTuple):
    """A kind of output: its name in messages, whether it is a folder, and how to recognise
    one that adamlab wrote (only such a one may be replaced)."""

    name: str
    folder: bool
    written_by_adamlab: Callable[[Path], bool]


#: The mark adamlab puts in every PNG it draws (matplotlib's ``savefig(metadata=...)``).
PNG_METADATA = {"Software": f"adamlab {__version__}"}


def _is_adamlab_png(path: Path) -> bool:
    from PIL import Image  # matplotlib's own PNG library; only needed when a PNG is in the way

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and str(image.info.get("Software", "")).startswith("adamlab ")
    except Exception:  # not an image, or a damaged one: not recognisably adamlab's
        return False


PNG = Kind("a PNG picture adamlab drew", False, _is_adamlab_png)


def check_outputs(outputs: Iterable[tuple[str, str | Path | None, Kind]],
                  inputs: Iterable[tuple[str, str | Path | None]] = (),
                  may_share: Iterable[tuple[str, str]] = ()) -> None:
    """Raise ValueError, naming the option and the path, if writing the outputs could lose anything.

    ``outputs`` are (option, path, kind) and ``inputs`` (option, path); a None path is left out.
    Paths are compared resolved (``./a``, ``a`` and a symlink to ``a`` are one path; so are two
    hard links): an output may not be, hold or lie inside an input or another output, but for the
    pairs of options in ``may_share`` (``("--save", "--resume")``: a run continued into its own
    checkpoint). Then each output is checked with :func:`check_output`.
    """
    outputs = [(option, Path(path), kind) for option, path, kind in outputs if path is not None]
    inputs = [(option, Path(path)) for option, path in inputs if path is not None]
    may_share = set(may_share)
    for index, (option, path, kind) in enumerate(outputs):
        for other, other_path in inputs + [(name, place) for name, place, _ in outputs[index + 1:]]:
            clash = _clash(path, other_path, option, other)
            if clash and not (clash.startswith("is") and (option, other) in may_share):
                raise ValueError(f"{option} {path} {clash} {other} {other_path}; an output may not "
                                 f"overwrite an input or another output")
        check_output(path, kind, option)


def _clash(path: Path, other: Path, option: str, other_option: str) -> str | None:
    """How ``path`` overlaps ``other`` ("is the same path as", "holds", "lies inside"), or None."""
    mine, theirs = _resolved(path, f"{option} {path}"), _resolved(other, f"{other_option} {other}")
    if mine == theirs or (path.exists() and other.exists() and os.path.samefile(path, other)):
        return "is the same path as"
    if theirs.is_relative_to(mine):
        return "holds"
    if mine.is_relative_to(theirs):
        return "lies inside"
    return None


def check_output(path: str | Path, kind: Kind, option: str | None = None) -> None:
    """Raise ValueError unless a new output of ``kind`` may be written at ``path``: its folder
    exists, and nothing is there but an earlier output of that kind that adamlab wrote (for a
    folder, its ``.partial`` twin too, where the new one is written first)."""
    named = f"{option} {path}" if option else str(path)
    target = _resolved(Path(path), named)
    if not target.parent.is_dir():
        raise ValueError(f"{named}: {target.parent} is not a directory")
    try:  # the one sure test of a folder being writable (root's access() says yes even in /proc)
        descriptor, probe = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
        os.close(descriptor)
        Path(probe).unlink(missing_ok=True)
    except OSError as error:
        raise ValueError(f"{named}: cannot write in {target.parent} ({error.strerror or error})") from None
    for place in [target, partial_folder(target)] if kind.folder else [target]:
        if not place.exists():
            continue
        where = "" if place == target else f"{place}, where the new folder is written first, "
        if place.is_dir() != kind.folder:
            raise ValueError(f"{named}: {where}is a {'file' if kind.folder else 'folder'}, "
                             f"not a {'folder' if kind.folder else 'file'}")
        if not ((place.is_dir() or place.is_file()) and kind.written_by_adamlab(place)):
            raise ValueError(f"{named}: {where}is not {kind.name}; adamlab replaces only what it "
                             f"wrote itself (remove it, or choose another path)")


def _resolved(path: Path, named: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as error:  # a loop of symlinks
        raise ValueError(f"{named}: cannot be followed ({error})") from None


def partial_folder(path: str | Path) -> Path:
    """Where the folder ``path`` is written before it is renamed into place."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def replace_folder(finished: str | Path, path: str | Path) -> None:
    """Rename the folder ``finished`` to ``path``, replacing the folder there (the caller has
    checked that it is adamlab's). rename(2) cannot replace a folder that holds files, so the old
    one moves aside under a fresh hidden name first and is then removed: only between those two
    renames, a moment, is there no folder at ``path``; if the second fails the old folder goes
    back. Another writer of ``path`` at the same moment (two exports of one page) may put its
    folder there in between: the later one wins."""
    path = Path(path)
    for _ in range(_REPLACE_TRIES):
        if not path.exists():
            try:
                os.replace(finished, path)
                return
            except OSError as error:  # another writer's folder arrived first: replace it
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                continue
        aside = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old")
        try:
            os.replace(path, aside)  # onto the empty folder mkdtemp made
        except FileNotFoundError:  # another writer moved it aside first
            os.rmdir(aside)
            continue
        try:
            os.replace(finished, path)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                os.replace(aside, path)  # the old folder back where it was, untouched
                raise
            shutil.rmtree(aside)  # another writer's folder arrived in between: replace it
            continue
        shutil.rmtree(aside)
        return
    raise ValueError(f"{path}: other writers kept replacing it; try again")


_REPLACE_TRIES = 10


@contextmanager
def atomic_write(path: str | Path):
    """Open a temporary binary file beside ``path``; on success it replaces ``path`` in one rename.

    On any error, Ctrl-C included, the temporary file is removed and ``path`` is untouched. The
    temporaries of earlier writers of ``path`` that were killed (``.NAME.XXXXXXXX.partial``) are
    removed first. A symlink at ``path`` stays: the file it names is replaced.
    """
    path = Path(path).resolve()
    if not path.parent.is_dir():
        raise ValueError(f"{path}: cannot write there, {path.parent} is not a directory")
    _remove_stale_temporaries(path)
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as error:
        raise ValueError(f"{path}: cannot write there ({error.strerror or error})") from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            # locked until renamed: a writer still at work is never taken for a dead one's debris
            fcntl.flock(file, fcntl.LOCK_EX)
            # mkstemp's file is private (0600); give the new file the mode a plain open() would,
            # or the mode of the file it replaces
            os.chmod(file.fileno(), path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~umask())
            yield file
            file.flush()
            os.fsync(file.fileno())
            os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


#: Seconds during which a temporary is a writer's that may not hold its lock yet, never debris.
FRESH_S = 60


def fsync_folder(path: str | Path) -> None:
    """Flush a folder's entries (the names of the files in it) to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hexadecimal, read in pieces."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files that writers of ``path`` killed mid-write left beside it:
    those named as :func:`atomic_write` names them that no live writer holds locked."""
    for stale in path.parent.glob(glob.escape(f".{path.name}.") + "????????.partial"):
        if stale.is_symlink() or not stale.is_file():
            continue
        try:
            if time.time() - stale.stat().st_mtime < FRESH_S:  # a writer may not have locked it yet
                continue
            with open(stale, "rb") as file:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                stale.unlink()
        except OSError:  # held by a writer at work (BlockingIOError), or gone already
            continue


def umask() -> int:
    """The process's file-creation mask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
