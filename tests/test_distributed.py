"""adamlab's optimizers on torch.distributed: 2 and 4 gloo processes on this machine.

Each rank's results come back through files; the checks run in the test process against a
single-process run of the same model, data and optimizer. The model is float64, so the only
difference a sharded run can show is the order of the gradient sums (rtol 1e-5 is loose).
"""

import json
import os
import pickle
import shutil
import time

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Shard, distribute_tensor
from torch.nn.parallel import DistributedDataParallel

import adamlab
from adamlab import distributed
from adamlab.cli import main
from adamlab.lab.gpt import GPT, GPTConfig
from adamlab.lab.training import RECIPES

#: Every adamlab optimizer, with settings that exercise its state.
OPTIMIZERS = {
    "sgd": (adamlab.SGD, {"lr": 0.05, "momentum": 0.9}),
    "adam": (adamlab.Adam, {"lr": 1e-2}),
    "adamw": (adamlab.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    "amsgrad": (adamlab.Adam, {"lr": 1e-2, "amsgrad": True}),
    "nadam": (adamlab.NAdam, {"lr": 1e-2, "weight_decay": 0.01}),
    "radam": (adamlab.RAdam, {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    "adamax": (adamlab.Adamax, {"lr": 1e-2}),
    "rmsprop": (adamlab.RMSprop, {"lr": 1e-3, "momentum": 0.5}),
    "adagrad": (adamlab.Adagrad, {"lr": 1e-2}),
    "lion": (adamlab.Lion, {"lr": 1e-3, "weight_decay": 0.1}),
    "lamb": (adamlab.LAMB, {"lr": 1e-2, "weight_decay": 0.01}),
    "adafactor": (adamlab.Adafactor, {"lr": 1e-2}),
    "adamw8bit": (adamlab.AdamW8bit, {"lr": 1e-2}),
}
STEPS, BATCH, WIDTH, DEPTH = 4, 16, 64, 4  # 64 x 64 matrices: 4096 elements, which 8-bit Adam quantizes


def network(width: int = WIDTH) -> torch.nn.Sequential:
    """Equal layers, so that whole tensors deal out evenly to 2 or 4 ranks."""
    torch.manual_seed(0)
    layers = []
    for _ in range(DEPTH):
        layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers).double()


def uneven_network() -> torch.nn.Sequential:
    """Matrices whose shards' edges cut 8-bit Adam's blocks of 256 on 2 and 4 ranks, and one
    (5 rows) that leaves the last of 4 ranks nothing."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(WIDTH, 90), torch.nn.Tanh(), torch.nn.Linear(90, 1000),
                               torch.nn.Tanh(), torch.nn.Linear(1000, 5), torch.nn.Linear(5, WIDTH)).double()


def sharded_network(model=None) -> torch.nn.Sequential:
    model = network() if model is None else model
    return distributed.shard(model, [layer for layer in model if isinstance(layer, torch.nn.Linear)])


def batches():
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(BATCH, WIDTH, generator=generator, dtype=torch.float64),
             torch.randn(BATCH, WIDTH, generator=generator, dtype=torch.float64)) for _ in range(STEPS)]


def train(model, optimizer, rank: int = 0, world: int = 1, steps=range(STEPS), die_at=None) -> None:
    """The given steps; each rank takes its slice of every batch (the gradients are averaged)."""
    data = batches()
    for step in steps:
        if step == die_at:
            os._exit(3)  # a rank dying without a word, as a killed or crashed process does
        inputs, targets = data[step]
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs.chunk(world)[rank]), targets.chunk(world)[rank])
        loss.backward()
        optimizer.step()


def whole(tensor: torch.Tensor) -> torch.Tensor:
    return (tensor.full_tensor() if isinstance(tensor, DTensor) else tensor).detach().clone()


# --- what the ranks run -----------------------------------------------------------------------

def sharded_runs(rank: int, world: int, port: int, folder: str) -> None:
    """Every optimizer under ZeRO and under FSDP2; the parameters and state bytes to a file."""
    distributed.init(rank, world, port)
    torch.set_num_threads(1)
    results = {}
    for name, (kind, settings) in OPTIMIZERS.items():
        # ZeRO: whole parameters dealt out to the ranks, each stepping its own with adamlab.
        model = DistributedDataParallel(network())
        optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=kind, **settings)
        train(model, optimizer, rank, world)
        results["zero", name] = {"params": [whole(p) for p in model.module.parameters()],
                                 "state_bytes": distributed.state_bytes(optimizer)}
        # FSDP2: every parameter split by rows between the ranks, as a DTensor.
        model = sharded_network()
        optimizer = kind(model.parameters(), **settings)
        train(model, optimizer, rank, world)
        results["fsdp2", name] = {"params": [whole(p) for p in model.parameters()],
                                  "state_bytes": distributed.state_bytes(optimizer)}
    model = sharded_network(uneven_network())
    optimizer = adamlab.AdamW8bit(model.parameters(), lr=1e-2)
    train(model, optimizer, rank, world)
    results["uneven"] = eight_bit_state(model, optimizer)
    results["quantized on load"] = switch_to_8bit(sharded_network(uneven_network()), rank, world)
    by_columns = distribute_tensor(torch.zeros(64, 64 * world), init_device_mesh("cpu", (world,)), [Shard(1)])
    try:
        adamlab.AdamW8bit([torch.nn.Parameter(by_columns)])
    except ValueError as error:
        results["split by columns"] = str(error)
    results["names-gpt"] = names_gpt_bytes()
    torch.save(results, os.path.join(folder, f"rank{rank}.pt"))


def eight_bit_state(model, optimizer) -> dict:
    """The whole parameters and 8-bit state of a run (a collective under FSDP2)."""
    state = get_state_dict(model, optimizer)[1]["state"] if isinstance(next(model.parameters()), DTensor) \
        else {name: optimizer.state[param] for name, param in model.named_parameters()}
    return {"params": [whole(p) for p in model.parameters()],
            "state": {name: {key: whole(value) for key, value in state[name].items() if key != "step"}
                      for name, _ in model.named_parameters() if "exp_avg_absmax" in state[name]}}


def switch_to_8bit(model, rank: int = 0, world: int = 1) -> dict:
    """Two AdamW steps, then 8-bit AdamW from AdamW's state (quantized on load) for the rest."""
    adamw = adamlab.AdamW(model.parameters(), lr=1e-2)
    train(model, adamw, rank, world, steps=range(2))
    optimizer = adamlab.AdamW8bit(model.parameters(), lr=1e-2)
    optimizer.load_state_dict(adamw.state_dict())
    train(model, optimizer, rank, world, steps=range(2, STEPS))
    return eight_bit_state(model, optimizer)


def names_gpt_bytes() -> dict:
    """One AdamW step of ``adamlab train``'s default model sharded with FSDP2: what this rank holds."""
    config = RECIPES["default"].settled()
    torch.manual_seed(0)
    model = GPT(GPTConfig(27, config.block_size, config.n_layer, config.n_embd, config.n_head, config.norm))
    distributed.shard(model, model.blocks)
    optimizer = adamlab.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, 27, (4, config.block_size), generator=torch.Generator().manual_seed(0))
    model(tokens, tokens)[1].backward()
    optimizer.step()
    params = list(model.parameters())
    return {"params": distributed.local_bytes(params), "grads": distributed.local_bytes([p.grad for p in params]),
            "state": distributed.state_bytes(optimizer)}


def save_then_die(rank: int, world: int, port: int, folder: str) -> None:
    """Two AdamW steps, a checkpoint, and then the last rank dies in the middle of step 3."""
    distributed.init(rank, world, port, timeout=20)
    torch.set_num_threads(1)
    model = sharded_network()
    optimizer = adamlab.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    train(model, optimizer, rank, world, steps=range(2))
    if rank == 0:  # what a writer killed earlier left: adamlab's own debris, removed by the next save
        debris = os.path.join(folder, "checkpoint.partial")
        os.mkdir(debris)
        for name in (distributed.MARKER, "__0_0.distcp"):
            with open(os.path.join(debris, name), "w") as file:
                file.write("half written")
    distributed.save(os.path.join(folder, "checkpoint"), model, optimizer, extra={"step": 2})
    uneven = sharded_network(uneven_network())  # and 8-bit Adam, its blocks cut by the shards' edges
    eight_bit = adamlab.AdamW8bit(uneven.parameters(), lr=1e-2)
    train(uneven, eight_bit, rank, world, steps=range(2))
    distributed.save(os.path.join(folder, "checkpoint-8bit"), uneven, eight_bit, extra={"step": 2})
    train(model, optimizer, rank, world, steps=range(2, STEPS), die_at=2 if rank == world - 1 else None)


class Mischief:
    """Unpickling this would create a folder: the code a checkpoint must never run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def load_into_another_model(checkpoint: str) -> None:
    other = distributed.shard(network(width=32))
    distributed.load(checkpoint, other, adamlab.AdamW(other.parameters()))


def resume(rank: int, world: int, port: int, folder: str) -> None:
    """Resume the checkpoint on ``world`` ranks and finish the run; on the way, try loading it
    into another model and another optimizer, and a checkpoint that carries code."""
    distributed.init(rank, world, port)
    torch.set_num_threads(1)
    checkpoint = os.path.join(folder, "checkpoint")
    report = {}
    model = sharded_network()
    optimizer = adamlab.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    before = [whole(p) for p in model.parameters()]
    for label, load in [
        ("other model", lambda: load_into_another_model(checkpoint)),
        ("other optimizer", lambda: distributed.load(checkpoint, model,
                                                     adamlab.SGD(model.parameters(), lr=0.1, momentum=0.9))),
        ("optimizer of another model", lambda: distributed.load(checkpoint, model,
                                                                adamlab.AdamW(network().parameters()))),
        ("half written", lambda: distributed.load(checkpoint + ".partial", model, optimizer)),
        ("code inside", lambda: distributed.load(os.path.join(folder, "mischief"), model, optimizer)),
        ("damaged", lambda: distributed.load(os.path.join(folder, "damaged"), model, optimizer)),
        # a user's folder, and a file, where a checkpoint would go: refused on every rank, kept
        ("save over a user's folder", lambda: distributed.save(os.path.join(folder, "mine"), model, optimizer)),
        ("save over a file", lambda: distributed.save(os.path.join(folder, "mine", "notes.txt"), model, optimizer)),
    ]:
        try:
            load()
            report[label] = "loaded"
        except ValueError as error:
            report[label] = str(error)
    report["unchanged"] = all(torch.equal(a, whole(p)) for a, p in zip(before, model.parameters()))
    extra = distributed.load(checkpoint, model, optimizer)
    train(model, optimizer, rank, world, steps=range(extra["step"], STEPS))
    report["params"] = [whole(p) for p in model.parameters()]
    uneven = sharded_network(uneven_network())
    eight_bit = adamlab.AdamW8bit(uneven.parameters(), lr=1e-2)
    extra = distributed.load(checkpoint + "-8bit", uneven, eight_bit)
    train(uneven, eight_bit, rank, world, steps=range(extra["step"], STEPS))
    report["8-bit"] = eight_bit_state(uneven, eight_bit)
    torch.save(report, os.path.join(folder, f"resumed{rank}.pt"))


# --- the checks -------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=[2, 4], ids=lambda world: f"{world}ranks")
def sharded(request, tmp_path_factory):
    """Every optimizer trained under ZeRO and FSDP2 on ``world`` ranks: (world, results by rank)."""
    world, folder = request.param, tmp_path_factory.mktemp(f"sharded{request.param}")
    distributed.launch(sharded_runs, world, str(folder), timeout=600)
    return world, [torch.load(folder / f"rank{rank}.pt", weights_only=True) for rank in range(world)]


@pytest.fixture(scope="module")
def single():
    """Every optimizer trained in one process on the whole batches."""
    results = {}
    for name, (kind, settings) in OPTIMIZERS.items():
        model = network()
        optimizer = kind(model.parameters(), **settings)
        train(model, optimizer)
        results[name] = {"params": [whole(p) for p in model.parameters()],
                         "state_bytes": distributed.state_bytes(optimizer)}
    model = uneven_network()
    optimizer = adamlab.AdamW8bit(model.parameters(), lr=1e-2)
    train(model, optimizer)
    results["uneven"] = eight_bit_state(model, optimizer)
    results["quantized on load"] = switch_to_8bit(uneven_network())
    return results


@pytest.mark.parametrize("how", ["zero", "fsdp2"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_sharded_training_ends_where_one_process_does(sharded, single, how, name):
    world, ranks = sharded
    for results in ranks:  # every rank ends with the same whole parameters as one process
        for got, want in zip(results[how, name]["params"], single[name]["params"], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-9)
    # and holds a 1/world share of the optimizer state, measured
    share = single[name]["state_bytes"] / world
    if how == "fsdp2" and name == "adafactor":
        # but for Adafactor's factors: a column mean spans every rank's rows, so each rank keeps
        # the whole row and column statistics of a matrix (64 + 64 numbers, not 64 x 64)
        factors = sum((rows + columns) * 8 for rows, columns in [(WIDTH, WIDTH)] * DEPTH)
        share = factors + (single[name]["state_bytes"] - factors) / world
    for results in ranks:
        assert results[how, name]["state_bytes"] == pytest.approx(share, rel=0.02)


@pytest.mark.parametrize("run", ["uneven", "quantized on load"])
def test_8bit_blocks_cut_by_shard_edges_are_coded_as_unsharded(sharded, single, run):
    """Where a shard's edge cuts a block of 256, the ranks agree on its scale: every code and
    scale is the single process's, so the run ends where it does (no agreement: 7e-4 off).
    So too when a sharded AdamW state is quantized on load."""
    _, ranks = sharded
    want = single[run]
    assert set(want["state"]) == {"0.weight", "2.weight", "4.weight"}  # (90, 64), (1000, 90), (5, 1000)
    for results in ranks:
        got = results[run]
        for key, state in want["state"].items():
            for name, value in state.items():
                assert torch.equal(got["state"][key][name], value), (key, name)
        for got_param, want_param in zip(got["params"], want["params"], strict=True):
            torch.testing.assert_close(got_param, want_param, rtol=1e-12, atol=1e-15)


def test_8bit_refuses_a_parameter_split_by_columns(sharded):
    """Its blocks run along the rows; a rank holding columns holds no run of them."""
    for results in sharded[1]:
        assert "split by rows over a 1-D mesh" in results["split by columns"]
        assert "(Shard(dim=1),)" in results["split by columns"]


def test_memory_per_rank_is_what_a_sharded_rank_holds(sharded, capsys):
    """``adamlab memory --ranks N``'s per-device bytes against what each rank of an FSDP2 run of
    the names GPT (AdamW, float32) holds: state alone (ZeRO 1), and weights, gradients and
    state (ZeRO 3, which FSDP2 is)."""
    world, ranks = sharded
    assert main(["memory", "--model", "names-default", "--ranks", str(world), "--json"]) == 0
    row = next(row for row in json.loads(capsys.readouterr().out)
               if row["optimizer"] == "adam" and row["precision"] == "float32")
    state_per_rank = row["per_device_bytes"]["zero1"] - row["weights_bytes"] - row["gradients_bytes"]
    for results in ranks:
        held = results["names-gpt"]
        assert held["state"] == pytest.approx(state_per_rank, rel=0.02)
        assert held["params"] + held["grads"] + held["state"] == pytest.approx(
            row["per_device_bytes"]["zero3"], rel=0.02)


def test_a_dead_rank_stops_the_run_and_the_last_checkpoint_resumes_on_fewer_ranks(tmp_path, single, capsys):
    started = time.monotonic()
    with pytest.raises(distributed.RankFailed, match="rank 3 exited with status 3"):
        distributed.launch(save_then_die, 4, str(tmp_path), timeout=300)
    assert time.monotonic() - started < 120  # stopped, not left waiting on the dead rank
    checkpoint = tmp_path / "checkpoint"
    assert (checkpoint / distributed.MARKER).is_file() and distributed.read_extra(checkpoint) == {"step": 2}

    # A checkpoint whose optimizer settings would run code when unpickled.
    model = network()
    optimizer = adamlab.AdamW(model.parameters(), lr=1e-2)
    train(model, optimizer, steps=range(1))
    model_state, optimizer_state = get_state_dict(model, optimizer)
    optimizer_state["param_groups"][0]["lr"] = Mischief(str(tmp_path / "ran"))
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(tmp_path / "mischief"))
    (tmp_path / "mischief" / distributed.MARKER).write_text(json.dumps(  # the format before digests
        {"format": distributed.UNCHECKED_FORMAT, "world": 1, "extra": {"step": 1}}))
    # A copy of the 4 ranks' checkpoint with 8 bytes flipped inside a tensor's record.
    shutil.copytree(checkpoint, tmp_path / "damaged")
    shard = tmp_path / "damaged" / "__0_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2:len(data) // 2 + 8] = bytes(255 - byte for byte in data[len(data) // 2:len(data) // 2 + 8])
    shard.write_bytes(bytes(data))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")

    distributed.launch(resume, 2, str(tmp_path), timeout=300)
    reports = [torch.load(tmp_path / f"resumed{rank}.pt", weights_only=True) for rank in range(2)]
    reference = network()
    train(reference, adamlab.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.1))
    for report in reports:  # saved on 4 ranks, resumed on 2: the run that never stopped
        for got, want in zip(report["params"], reference.parameters(), strict=True):
            torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-9)
        assert "'model.0.weight' has shape (64, 64) in the checkpoint, (32, 32) here" in report["other model"]
        assert "momentum_buffer" in report["other optimizer"]
        assert "parameter 0 of the optimizer's group 0 (shape (64, 64)) is not one of the model's" \
            in report["optimizer of another model"]
        assert "not a complete adamlab checkpoint" in report["half written"]
        assert "could not read the checkpoint: it holds objects other than tensors" in report["code inside"]
        assert "__0_0.distcp: damaged (its sha256 is not the one saved with the checkpoint)" in report["damaged"]
        assert "mine: is not a checkpoint folder adamlab saved" in report["save over a user's folder"]
        assert "notes.txt: is a file, not a folder" in report["save over a file"]
        assert report["unchanged"]
        # 8-bit Adam's codes and scales resharded from 4 ranks to 2: exactly those of one process
        for key, state in single["uneven"]["state"].items():
            for name, value in state.items():
                assert torch.equal(report["8-bit"]["state"][key][name], value), (key, name)
        for got, want in zip(report["8-bit"]["params"], single["uneven"]["params"], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    assert not (tmp_path / "ran").exists()
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("checkpoint")) == [
        "checkpoint", "checkpoint-8bit"]  # the debris of a killed writer is gone
    assert [path.name for path in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    assert (tmp_path / "mine" / "notes.txt").read_text() == "the user's"
    # a complete checkpoint folder, but not of ``adamlab train``
    assert main(["train", "--resume", str(checkpoint)]) == 2
    assert "checkpoint: not an adamlab train checkpoint" in capsys.readouterr().err


def test_checkpoint_metadata_that_would_run_code_is_refused(tmp_path):
    """torch.distributed.checkpoint unpickles a folder's ``.metadata`` with plain pickle; adamlab
    reads it with an unpickler that knows only the metadata's own classes. (In one process, no
    ranks: a folder loads whole outside a process group.)"""
    model = network()
    optimizer = adamlab.AdamW(model.parameters(), lr=1e-2)
    train(model, optimizer, steps=range(1))
    model_state, optimizer_state = get_state_dict(model, optimizer)
    folder = tmp_path / "checkpoint"
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(folder), no_dist=True)
    metadata = pickle.loads((folder / ".metadata").read_bytes())
    metadata.storage_meta = Mischief(str(tmp_path / "ran"))
    (folder / ".metadata").write_bytes(pickle.dumps(metadata))
    (folder / distributed.MARKER).write_text(json.dumps(  # the format before digests: no digest to stop it
        {"format": distributed.UNCHECKED_FORMAT, "world": 1, "extra": {"step": 1}}))
    before = [whole(p) for p in model.parameters()]
    with pytest.raises(ValueError, match=r"could not read the checkpoint.s metadata \(\w+\.mkdir is not part of"):
        distributed.load(folder, model, optimizer)
    assert not (tmp_path / "ran").exists()
    assert all(torch.equal(a, whole(p)) for a, p in zip(before, model.parameters()))
