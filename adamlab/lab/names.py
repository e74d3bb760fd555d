"""A corpus of names as character tokens, split and batched for a character-level GPT.

Each name becomes ``[BOS] + characters + [BOS]``: the model learns where names
start and end from the one boundary token. The vocabulary is built from the
characters of the corpus itself.
"""

import random
import stat
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import torch

BOS = "<BOS>"  # the boundary token, id 0
DEFAULT_CORPUS = "5,163 US first names (1990 census, public domain), shipped with adamlab"
#: The largest names file adamlab reads, 16 MiB: about two million names, 70 times the
#: 32,033 names microgpt trains on (each name costs the model's data about 300 bytes more).
MAX_BYTES = 16 * 2**20


class CorpusError(ValueError):
    """A names file that cannot be used, with the reason in its message."""


def read_names(path: str | Path | None = None) -> list[str]:
    """The names in ``path`` (one per line, blank lines skipped), or adamlab's own corpus.

    Only a regular file of at most ``MAX_BYTES`` is read: a device (``/dev/zero``), a pipe or a
    socket could block or never end."""
    if path is None:
        text = resources.files("adamlab.data").joinpath("names.txt").read_text(encoding="utf-8")
        return text.split()
    path = Path(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise CorpusError(f"{path}: is a directory, not a names file")
        if not stat.S_ISREG(info.st_mode):
            raise CorpusError(f"{path}: is not a regular file (a device, pipe or socket), not a names file")
        if info.st_size > MAX_BYTES:
            raise CorpusError(f"{path}: is {info.st_size:,} bytes; a names file may hold at most "
                              f"{MAX_BYTES:,} (16 MiB)")
        # A file that reports no size (as /proc's do) is taken as empty: its end is unknown.
        raw = path.read_bytes() if info.st_size else b""
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except OSError as error:
        raise CorpusError(f"{path}: cannot be read ({error.strerror or error})") from None
    if len(raw) > MAX_BYTES:  # grew since its size was read
        raise CorpusError(f"{path}: holds more than {MAX_BYTES:,} bytes (16 MiB), the most a names file may hold")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path}: not UTF-8 text (byte {raw[error.start]:#04x} at offset "
                          f"{error.start})") from None
    names = []
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        odd = next((char for char in name if not char.isprintable() or char.isspace()), None)
        if odd is not None:
            raise CorpusError(f"{path}: line {number} holds {odd!r}; a names file has one name "
                              f"per line, without spaces or control characters")
        names.append(name)
    if len(names) < 2:
        raise CorpusError(f"{path}: holds {len(names)} names; training needs at least 2 "
                          f"(one to train on, one to validate)")
    return names


@dataclass(frozen=True)
class Vocabulary:
    """Characters and their token ids; id 0 is the boundary token."""

    characters: tuple[str, ...]

    @classmethod
    def of(cls, names: list[str]) -> "Vocabulary":
        return cls(tuple(sorted(set("".join(names)))))

    @property
    def size(self) -> int:
        return len(self.characters) + 1

    @cached_property
    def _ids(self) -> dict[str, int]:
        return {char: index for index, char in enumerate(self.characters, start=1)}

    def encode(self, name: str) -> list[int]:
        missing = sorted(set(name) - self._ids.keys())
        if missing:
            raise CorpusError(f"{name!r} holds characters outside the vocabulary: {''.join(missing)!r}")
        return [0] + [self._ids[char] for char in name] + [0]

    def decode(self, tokens) -> str:
        return "".join(self.characters[token - 1] for token in tokens if token != 0)


def split(names: list[str], validation_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded shuffle of ``names`` cut into training and validation names (at least one each)."""
    shuffled = list(names)
    random.Random(seed).shuffle(shuffled)
    held_out = min(len(shuffled) - 1, max(1, round(len(shuffled) * validation_fraction)))
    return shuffled[held_out:], shuffled[:held_out]


def encode_all(names: list[str], vocabulary: Vocabulary, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets, one row per name, cut at ``block_size`` and padded with -1 targets."""
    inputs = torch.zeros(len(names), block_size, dtype=torch.long)
    targets = torch.full((len(names), block_size), -1, dtype=torch.long)
    for row, name in enumerate(names):
        tokens = vocabulary.encode(name)[: block_size + 1]
        length = len(tokens) - 1
        inputs[row, :length] = torch.tensor(tokens[:-1])
        targets[row, :length] = torch.tensor(tokens[1:])
    return inputs, targets
