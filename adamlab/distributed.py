"""Training on several processes with torch.distributed: starting them, sharding, checkpoints.

adamlab's optimizers need nothing special here; this module holds what a run around them needs.

- :func:`launch` starts one process per rank on this machine (torch.multiprocessing) and waits
  for them with a deadline: a rank that fails or dies stops the others and raises
  :class:`RankFailed` naming it, instead of leaving the rest waiting on it forever.
- :func:`init` joins the process group (gloo on CPU, nccl on GPU) with a timeout on every
  collective, so a rank whose peer died stops with an error too.
- :func:`shard` is FSDP2 (``fully_shard``) over a model's layers: parameters, gradients and
  optimizer state become DTensors, each rank holding 1/world of each.
- :func:`save` and :func:`load` are ``torch.distributed.checkpoint`` with its state_dict
  helpers: a run saved on 4 ranks resumes on 2. A checkpoint is a folder, written beside its
  final name and renamed into place, so a killed writer never leaves half of one to be read;
  its JSON marker holds the sha256 of every file, checked on every rank before loading.
- :func:`local_bytes` measures what one rank holds.

The same optimizers also work as the ``optimizer_class`` of
``torch.distributed.optim.ZeroRedundancyOptimizer`` (whole tensors split between the ranks),
8-bit Adam included.
"""

import ctypes
import datetime
import hashlib
import json
import pickle
import re
import shutil
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint import metadata as checkpoint_metadata
from torch.distributed.checkpoint._nested_dict import flatten_state_dict
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.metadata import StorageMeta, TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor
from torch.utils._pytree import tree_leaves, tree_map_only

from .files import Kind, check_output, partial_folder, replace_folder, sha256_of

#: Seconds a collective may wait on a peer before the rank gives up with an error.
COLLECTIVE_TIMEOUT = 60.0
#: The file in a checkpoint folder that says it is complete and what it holds.
MARKER = "adamlab-checkpoint.json"
FORMAT = "adamlab-distributed-2"
#: Folders saved before the marker held digests: still read, without the check.
UNCHECKED_FORMAT = "adamlab-distributed-1"
#: The names torch.distributed.checkpoint gives the files it writes into a folder.
_DCP_FILES = re.compile(r"__\d+_\d+\.distcp|(__\d+)?\.metadata(\.tmp)?")
_PR_SET_PDEATHSIG = 1  # Linux's prctl option: a signal for this process when its parent dies


class RankFailed(RuntimeError):
    """A rank of :func:`launch` raised, died or ran past the deadline."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(function: Callable, world: int, *args, timeout: float = 600.0, port: int | None = None) -> None:
    """Run ``function(rank, world, port, *args)`` in ``world`` fresh processes and wait for all.

    ``function`` must be importable by name (the processes are spawned, not forked). If any
    rank raises or dies, the others are stopped and RankFailed says which rank and why; so
    does running past ``timeout`` seconds. Ranks report results through files, not return
    values.
    """
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        raise ValueError(f"world must be a whole number >= 1, got {world!r}")
    port = free_port() if port is None else port
    # The ranks start with Ctrl-C ignored (inherited, and kept by Python): the terminal's signal
    # reaches the caller, which stops them, instead of each rank at some point of its start.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
    try:
        context = mp.start_processes(_rank, args=(function, world, port, *args), nprocs=world, join=False,
                                     start_method="spawn")
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=0.5):
            if time.monotonic() > deadline:
                raise RankFailed(f"the {world} ranks did not finish within {timeout:g} s")
    except mp.ProcessRaisedException as error:
        raise RankFailed(f"rank {error.error_index} failed:\n{error}") from None
    except mp.ProcessExitedException as error:
        how = (f"was killed by signal {error.signal_name}" if error.signal_name
               else f"exited with status {error.exit_code}")
        raise RankFailed(f"rank {error.error_index} {how}") from None
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join()


def _rank(rank: int, function: Callable, world: int, port: int, *args) -> None:
    """One rank of :func:`launch`: ``function``, then leaving the process group together, so that
    no rank exits while a peer still reads from it (gloo would abort that peer)."""
    if sys.platform == "linux":  # a rank outlives no launcher: torch's SIGINT for that is ignored here
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    function(rank, world, port, *args)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def init(rank: int, world: int, port: int, backend: str | None = None,
         timeout: float = COLLECTIVE_TIMEOUT) -> torch.device:
    """Join the process group of ``world`` ranks on 127.0.0.1:``port``; return this rank's device.

    The backend is nccl where CUDA is available, else gloo. No collective waits more than
    ``timeout`` seconds on a peer: a dead rank makes the others fail rather than hang."""
    cuda = torch.cuda.is_available() if backend is None else backend == "nccl"
    backend = backend or ("nccl" if cuda else "gloo")
    device = torch.device("cuda", rank % torch.cuda.device_count()) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout))
    return device


def shard(model: torch.nn.Module, layers: Iterable[torch.nn.Module] = ()) -> torch.nn.Module:
    """FSDP2 over ``model``: each of ``layers`` sharded as a unit (gathered for its own forward
    only), then the model for the rest. Returns the model, now holding DTensor parameters."""
    for layer in layers:
        fully_shard(layer)
    fully_shard(model)
    return model


def local_bytes(tensors: Iterable) -> int:
    """Bytes this rank holds of ``tensors`` (nested dicts and lists too): a DTensor counts only
    its local shard."""
    local = [value.to_local() if isinstance(value, DTensor) else value
             for value in tree_leaves(list(tensors)) if isinstance(value, torch.Tensor)]
    return sum(value.numel() * value.element_size() for value in local)


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of optimizer state on this rank (for ZeroRedundancyOptimizer: its local optimizer's)."""
    inner = getattr(optimizer, "optim", optimizer)
    return local_bytes(inner.state.values())


# --- checkpoints -------------------------------------------------------------------------------

def is_checkpoint_folder(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint folder that :func:`save` wrote, whole or in part: its
    marker and the files of torch.distributed.checkpoint, and nothing else (a folder holding a
    file of anyone else's is not adamlab's to replace)."""
    try:
        entries = list(Path(path).iterdir())
    except OSError:  # unreadable: not recognisably adamlab's
        return False
    return any(entry.name == MARKER for entry in entries) and all(
        entry.is_file() and (entry.name == MARKER or _DCP_FILES.fullmatch(entry.name)) for entry in entries)


#: A checkpoint folder as an output: only one adamlab saved may be replaced (adamlab.files).
CHECKPOINT_FOLDER = Kind("a checkpoint folder adamlab saved", True, is_checkpoint_folder)


def save(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, extra: dict | None = None) -> None:
    """Every rank writes its shards of ``model`` and ``optimizer`` into the checkpoint folder
    ``path``, and rank 0 ``extra`` (JSON: the run's step, settings, history) beside them.

    The folder is written as ``path`` + ".partial" and renamed into place once every rank has
    finished, replacing an older checkpoint; a reader never finds a half-written one at ``path``.
    Its marker holds the sha256 of every file, and of the marker's own contents. Whatever is at
    ``path`` or its ``.partial`` twin must be a checkpoint folder adamlab saved (ValueError on
    every rank otherwise, before anything is written).
    """
    path = Path(path).resolve()  # through a symlink: the folder it names is replaced
    check_output(path, CHECKPOINT_FOLDER)
    _reshard(model)
    _check_optimizer_of(model, optimizer)
    partial = partial_folder(path)
    dist.barrier()  # every rank has checked before rank 0 changes anything
    if dist.get_rank() == 0:
        if partial.exists():
            shutil.rmtree(partial)  # debris of a writer killed earlier (checked above: adamlab's)
        partial.mkdir()
        # marked from the start, so that a writer killed now leaves debris known as adamlab's
        (partial / MARKER).write_text(json.dumps({"format": FORMAT, "writing": True}) + "\n")
    dist.barrier()
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(partial))
    dist.barrier()
    if dist.get_rank() == 0:
        files = {entry.name: sha256_of(entry) for entry in sorted(partial.iterdir()) if entry.name != MARKER}
        marker = {"format": FORMAT, "world": dist.get_world_size(), "extra": extra or {}, "files": files}
        (partial / MARKER).write_text(json.dumps({**marker, "sha256": _digest(marker)}, indent=1) + "\n")
        replace_folder(partial, path)
    dist.barrier()



def _digest(marker: dict) -> str:
    """The sha256 of the marker's contents, written as canonical JSON."""
    return hashlib.sha256(json.dumps(marker, sort_keys=True).encode()).hexdigest()


def read_extra(path: str | Path) -> dict:
    """The ``extra`` saved with the checkpoint folder ``path``, after checking every file of it
    against its digest; ValueError, naming the file, if it is not a complete adamlab checkpoint
    or is damaged."""
    path = Path(path)
    marker = _marker(path)
    for name, digest in marker.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise ValueError(f"{file}: missing from the checkpoint folder")
        if sha256_of(file) != digest:
            raise ValueError(f"{file}: damaged (its sha256 is not the one saved with the checkpoint)")
    return marker["extra"]


def saved_world(path: str | Path) -> int:
    """The number of ranks that saved the checkpoint folder ``path``."""
    return _marker(path)["world"]


def _marker(path: Path) -> dict:
    """The checkpoint folder's marker, its own digest checked."""
    marker_path = Path(path) / MARKER
    try:
        marker = json.loads(marker_path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: not a complete adamlab checkpoint (no {MARKER})") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{marker_path}: unreadable ({error})") from None
    if not isinstance(marker, dict) or marker.get("format") not in (FORMAT, UNCHECKED_FORMAT):
        raise ValueError(f"{path}: not an adamlab distributed checkpoint")
    if marker.get("writing"):
        raise ValueError(f"{path}: not a complete adamlab checkpoint (its writer stopped before the end)")
    if marker["format"] == FORMAT and marker.pop("sha256", None) != _digest(marker):
        raise ValueError(f"{marker_path}: damaged (its sha256 is not the one saved with it)")
    if not isinstance(marker.get("extra"), dict) or not isinstance(marker.get("world"), int):
        raise ValueError(f"{marker_path}: damaged (it lacks the checkpoint's settings)")
    return marker


class _Reader(dcp.FileSystemReader):
    """torch.distributed.checkpoint's reader, but its ``.metadata`` (a pickle) is read with a
    restricted unpickler: checkpoint metadata classes, sizes, dtypes and paths, never code."""

    def read_metadata(self, *args, **kwargs):
        metadata_path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(metadata_path, "rb") as stream:
            metadata = _MetadataUnpickler(stream).load()
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class _MetadataUnpickler(pickle.Unpickler):
    """Unpickles only the classes a checkpoint's metadata is made of (the standard library's
    recipe for restricting globals)."""

    def find_class(self, module: str, name: str):
        value = super().find_class(module, name)
        allowed = (module == checkpoint_metadata.__name__ and isinstance(value, type)
                   or (module, name) in {("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
                                         ("torch", "Size"), ("torch.serialization", "_get_layout"),
                                         ("pathlib", "PosixPath"), ("pathlib", "WindowsPath")}
                   or module == "torch" and isinstance(value, torch.dtype))
        if not allowed:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a checkpoint's metadata")
        return value


def load(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load the checkpoint folder ``path`` into ``model`` and ``optimizer``, resharded for this
    run's ranks (or whole, in a process outside any process group), and return its ``extra``.

    A folder that is not a complete checkpoint, a damaged one (every file is checked against
    its sha256 first), or one of another model or optimizer, raises ValueError naming the first
    fault, and nothing is changed. Loading runs no code from the files: tensors and the
    optimizer's settings are read with ``weights_only=True``, the metadata with a restricted
    unpickler."""
    path = Path(path)
    extra = read_extra(path)
    _reshard(model)
    _check_optimizer_of(model, optimizer)
    model_state, optimizer_state = get_state_dict(model, optimizer)
    wanted = {"model": model_state, "optimizer": optimizer_state}
    try:
        metadata = _Reader(str(path)).read_metadata()
    except Exception as error:  # pickle raises many kinds for a file it cannot read
        raise ValueError(f"{path}: could not read the checkpoint's metadata ({_last_line(error)})") from None
    _check_keys(path, wanted, metadata.state_dict_metadata)
    # read into copies, so that a failed read changes nothing
    state = tree_map_only(torch.Tensor, lambda tensor: tensor.detach().clone(), wanted)
    try:
        with warnings.catch_warnings():  # one process may resume a sharded run: torch warns even so
            warnings.filterwarnings("ignore", "torch.distributed is disabled")
            dcp.load(state, storage_reader=_Reader(str(path)), planner=_WeightsOnlyPlanner(),
                     no_dist=not dist.is_initialized())
    except (Exception, CheckpointException) as error:  # the latter gathers every rank's errors
        why = ("it holds objects other than tensors and plain values, which loading them would "
               "run as code" if "Weights only load failed" in str(error) else _last_line(error))
        raise ValueError(f"{path}: could not read the checkpoint: {why}") from None
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    return extra


def _reshard(model: torch.nn.Module) -> None:
    """Register the sharded parameters in every FSDP2 module: the root keeps its parameters
    unsharded after a forward, and the optimizer holds the sharded ones."""
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def _check_optimizer_of(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Checkpoints name the optimizer's state by the model's parameter names: raise ValueError
    for a parameter of the optimizer that is not the model's."""
    owned = {id(param) for param in model.parameters()}
    for index, group in enumerate(optimizer.param_groups):
        for position, param in enumerate(group["params"]):
            if id(param) not in owned:
                raise ValueError(f"parameter {position} of the optimizer's group {index} (shape "
                                 f"{tuple(param.shape)}) is not one of the model's")


class _WeightsOnlyPlanner(DefaultLoadPlanner):
    """The default load plan, but the non-tensor entries (the optimizer's settings) are
    unpickled with ``weights_only=True``: numbers, strings and containers, never code."""

    def load_bytes(self, read_item, value) -> None:
        loaded = torch.load(value, weights_only=True)
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
        else:
            self.state_dict[read_item.dest_index.fqn] = loaded


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _check_keys(path: Path, wanted: dict, saved: dict) -> None:
    """Raise ValueError naming the first tensor that this run needs and the checkpoint lacks or
    holds with another shape, or that the checkpoint holds and this run lacks."""
    flat, _ = flatten_state_dict(wanted)  # named as torch.distributed.checkpoint names its entries
    tensors = {key: value for key, value in flat.items() if isinstance(value, torch.Tensor)}
    for key, value in tensors.items():
        entry = saved.get(key)
        if not isinstance(entry, TensorStorageMetadata):
            raise ValueError(f"{path}: the checkpoint has no {key!r}; it was saved from another model "
                             f"or optimizer")
        if tuple(entry.size) != tuple(value.shape):
            raise ValueError(f"{path}: {key!r} has shape {tuple(entry.size)} in the checkpoint, "
                             f"{tuple(value.shape)} here")
    unknown = sorted(key for key, entry in saved.items()
                     if isinstance(entry, TensorStorageMetadata) and key not in tensors)
    if unknown:
        raise ValueError(f"{path}: the checkpoint has {unknown[0]!r}, which this model and optimizer lack")

