"""Building, caching and falling back: the fused kernels as a new machine meets them."""

import os
import subprocess
import sys

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
    assert len(list(tmp_path.glob("cpu-kernels-*.so"))) == 1
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
