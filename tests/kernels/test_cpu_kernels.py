"""Building, caching and falling back: the fused kernels as a new machine meets them."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest
import torch

from adamlab import kernels

STEP = """
import torch, adamlab
param = torch.nn.Parameter(torch.ones(8))
param.grad = torch.ones(8)
optimizer = adamlab.AdamW([param], fused={fused})
optimizer.step()
print(round(param[0].item(), 6))
"""


def python(code, **environment):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **environment})


def test_the_first_step_compiles_once_and_says_so(tmp_path):
    first = python(STEP.format(fused=None), ADAMLAB_CACHE=str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "adamlab: compiling the fused CPU kernels" in first.stderr
    assert "adamlab: compiling the fused adam kernel for" in first.stderr
    assert len(list(tmp_path.glob("cpu-kernels-*/kernels-*.so"))) == 1  # the library: the floor, the dtypes
    assert len(list(tmp_path.glob("cpu-adam-*/kernels-*.so"))) == 1  # AdamW's, generated
    second = python(STEP.format(fused=None), ADAMLAB_CACHE=str(tmp_path))
    assert second.returncode == 0 and second.stderr == ""  # cached: nothing to say
    assert first.stdout == second.stdout == "0.99899\n"


def test_without_a_compiler_the_simple_path_runs_and_fused_true_fails(tmp_path):
    fallback = python(STEP.format(fused=None), ADAMLAB_CACHE=str(tmp_path), CC="/nonexistent/cc")
    assert fallback.returncode == 0, fallback.stderr
    assert "fused kernels unavailable, using the simple path" in fallback.stderr
    assert fallback.stdout == "0.99899\n"
    demanded = python(STEP.format(fused=True), ADAMLAB_CACHE=str(tmp_path), CC="/nonexistent/cc")
    assert demanded.returncode != 0 and "adamlab.AdamW(fused=True): no C compiler" in demanded.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A kernel cache with one build in it, made once for this module's tests to copy."""
    cache = tmp_path_factory.mktemp("built")
    assert python(STEP.format(fused=None), ADAMLAB_CACHE=str(cache)).returncode == 0
    return cache


def _copy_of(built, cache):
    """A copy of the built cache at ``cache``, and its library."""
    shutil.copytree(built, cache)
    (library,) = cache.glob("cpu-kernels-*/kernels-*.so")
    return library


def _truncate(library):
    library.write_bytes(library.read_bytes()[: library.stat().st_size // 2])


def _empty(library):
    library.write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncate, _empty])
def test_a_damaged_cached_library_is_built_again_not_loaded(built, tmp_path, damage):
    # A truncated shared object killed every later process with SIGBUS inside dlopen; an empty
    # one was never built again. Also left here: a folder of a build that was killed.
    cache = tmp_path / "cache"
    library = _copy_of(built, cache)
    damage(library)
    finished = subprocess.Popen(["true"])
    finished.wait()
    debris = cache / f".{library.parent.name}.abc.{finished.pid}.partial"  # its builder is gone
    debris.mkdir()
    (debris / "kernels.so").write_bytes(b"half")
    building = cache / f".{library.parent.name}.xyz.{os.getpid()}.partial"  # its builder still runs
    building.mkdir()
    again = python(STEP.format(fused=True), ADAMLAB_CACHE=str(cache))
    assert again.returncode == 0, again.stderr
    assert "adamlab: compiling the fused CPU kernels" in again.stderr and again.stdout == "0.99899\n"
    assert not debris.exists() and building.exists()
    after = python(STEP.format(fused=True), ADAMLAB_CACHE=str(cache))
    assert after.returncode == 0 and after.stderr == ""  # the new build verifies


def test_a_verified_library_without_the_kernels_is_built_again(built, tmp_path):
    library = _copy_of(built, tmp_path / "cache")
    source = tmp_path / "other.c"
    source.write_text("int unrelated(void) { return 0; }\n")
    foreign = tmp_path / "other.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(foreign), str(source)], check=True)
    digest = hashlib.sha256(foreign.read_bytes()).hexdigest()
    library.unlink()
    foreign.rename(library.parent / f"kernels-{digest[:16]}.so")
    (library.parent / "kernels.sha256").write_text(digest + "\n")
    again = python(STEP.format(fused=True), ADAMLAB_CACHE=str(tmp_path / "cache"))
    assert again.returncode == 0, again.stderr
    assert "compiling" in again.stderr and "Traceback" not in again.stderr and again.stdout == "0.99899\n"


def test_a_failing_build_warns_once_and_takes_the_simple_path(tmp_path):
    compiler = tmp_path / "broken-cc"
    compiler.write_text("#!/bin/sh\necho 'cc: internal error' >&2\nexit 1\n")
    compiler.chmod(0o755)
    steps = STEP.format(fused=None) + "optimizer.step(); adamlab.SGD([param], lr=0.1).step()\n"
    fallback = python(steps, ADAMLAB_CACHE=str(tmp_path / "cache"), CC=str(compiler))
    assert fallback.returncode == 0, fallback.stderr
    assert fallback.stderr.count("fused kernels unavailable, using the simple path") == 1
    assert "Traceback" not in fallback.stderr and fallback.stdout == "0.99899\n"
    demanded = python(STEP.format(fused=True), ADAMLAB_CACHE=str(tmp_path / "cache"), CC=str(compiler))
    assert demanded.returncode != 0 and "StepRefused: adamlab.AdamW(fused=True)" in demanded.stderr


def test_the_stream_floor_reads_four_arrays_and_writes_three():
    rows = [[torch.ones(5), torch.full((5,), 2.0), torch.zeros(5), torch.zeros(5)], [torch.ones(0)] * 4]
    kernels.cpu.stream(rows)
    assert rows[0][0].tolist() == [3.0] * 5 and rows[0][1].tolist() == [2.0] * 5
    assert rows[0][2].tolist() == rows[0][3].tolist() == [2.0] * 5


def test_bfloat16_storage_rounds_to_nearest_even():
    # 1 + 2^-8 lies halfway between two bfloat16 values; ties go to the even one, 1.0.
    param = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.bfloat16))
    optimizer = __import__("adamlab").SGD([param], lr=1.0)
    param.grad = torch.tensor([-(2.0**-8), -(3 * 2.0**-9)], dtype=torch.bfloat16)
    optimizer.step()
    assert param.tolist() == [1.0, 1.0078125]


@pytest.mark.parametrize("count", [4, 6])
def test_a_kernel_is_never_called_with_more_or_fewer_hyperparameters_than_it_reads(count):
    """C reads exactly its hyperparameters (and a seed after them): any other count is refused."""
    from adamlab.maths import adam
    kernel = kernels.cpu.generated(adam, dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                              decoupled_weight_decay=False, amsgrad=False, maximize=False),
                                   {"step": "tensor", "m": "element", "v": "element"})
    param, grad = torch.ones(10), torch.ones(10)
    row = [param, grad, torch.zeros(10), torch.zeros(10), torch.zeros(())]
    call = kernels.cpu.Call(kernel, torch.float32, [row])
    with pytest.raises(kernels.cpu.KernelInputError, match="takes 5 hyperparameters, got " + str(count)):
        call.run([0.1] * count, seed=1)
    assert torch.equal(param, torch.ones(10)) and row[-1].item() == 0
    call.run([0.1, 0.9, 0.999, 1e-8, 0.0])
    assert row[-1].item() == 1 and not torch.equal(param, torch.ones(10))
