/* adamlab's hand-written fused CPU steps: those that are more than elementwise maths (8-bit
 * Adam's block codes, LAMB's and Adafactor's per-tensor reductions). The elementwise update
 * rules are not here: generate.py prints their kernels from adamlab/maths. These restate their
 * update of adamlab/maths/; the tests hold them to the simple path. The body (cpu_body.h) is
 * compiled once per storage type: float32, float64, and bfloat16 and float16 computed in
 * float32 (each value rounded once, when stored).
 *
 * The kernels trust what they are handed: adamlab/kernels/cpu.py checks every tensor of a call
 * (device, dtype, element count, layout) against the kernel's columns before calling.
 *
 * Non-finite values follow torch's operations: a maximum or a floor keeps a NaN (torch.maximum,
 * clamp), except where adamlab/maths says otherwise (Adafactor's two scalar maxima, which
 * torch.optim takes with Python's max).
 *
 * Calling convention, the same for every kernel:
 *   count    tensors in the call
 *   pointers count rows of K data pointers: param, grad, the state tensors, then the step counter
 *   sizes    elements of each tensor
 *   scalars  the hyperparameters, in the order each kernel documents
 *   options  OPTION_* bits
 *   threads  OpenMP threads
 */
#include "skeleton.h"

/* 8-bit state (adamlab/maths/quantize.py): blocks of BLOCK elements with one float32 scale, and
 * the tables to find a value's nearest code without a search. A cell is picked by a float32's
 * sign, exponent and top CELL_BITS mantissa bits; it holds at most one boundary between codes,
 * so the code is the count of boundaries below the cell plus one if the next is below y. */
#define CELL_BITS 7
#define LOWEST_EXPONENT (-24)
#define CELLS_PER_SIGN (-LOWEST_EXPONENT * (1 << CELL_BITS) + 2)
typedef struct {
    float code[2][256];   /* [0] the signed code (for m), [1] the unsigned one (for v) */
    float bound[2][256];  /* the 255 boundaries between neighbouring codes, then +infinity */
    int32_t cell[2][2 * CELLS_PER_SIGN];  /* boundaries below each cell, positive cells then negative (int32: gathers) */
} code_tables_t;

_Static_assert(CHUNK % BLOCK == 0, "a chunk holds whole blocks");

/* The floor of any optimizer step: read four arrays, write three in place, no maths. */
void adamlab_stream_f32(int64_t count, void **pointers, const int64_t *sizes, int threads) {
    chunk_t *chunks;
    int64_t n = make_chunks(count, sizes, &chunks);
#pragma omp parallel for schedule(static) num_threads(threads) if (n > 1 && parallel_worth_it(count, sizes))
    for (int64_t c = 0; c < n; c++) {
        float *restrict p = pointers[chunks[c].tensor * 4], *restrict g = pointers[chunks[c].tensor * 4 + 1];
        float *restrict a = pointers[chunks[c].tensor * 4 + 2], *restrict b = pointers[chunks[c].tensor * 4 + 3];
        for (int64_t i = chunks[c].start; i < chunks[c].end; i++) {
            float x = g[i];
            p[i] += x;
            a[i] += x;
            b[i] += x;
        }
    }
    free(chunks);
}

#define STORAGE float
#define REAL float
#define SQRT sqrtf
#define LOAD(x) (x)
#define STORE(x) (x)
#define STORE_PARAM(x, tensor, i) (x)
#define NAME(kernel) adamlab_##kernel##_f32
#define EXACT_STORE 1  /* STORE keeps a REAL as it is */
#include "cpu_body.h"

#define STORAGE double
#define REAL double
#define SQRT sqrt
#define LOAD(x) (x)
#define STORE(x) (x)
#define STORE_PARAM(x, tensor, i) (x)
#define NAME(kernel) adamlab_##kernel##_f64
#define EXACT_STORE 1
#include "cpu_body.h"

#define STORAGE uint16_t
#define REAL float
#define SQRT sqrtf
#define LOAD(x) bf16_load(x)
#define STORE(x) bf16_store(x)
/* A parameter is stored with stochastic rounding when the step has a seed. */
#define STORE_PARAM(x, tensor, i) (seed ? bf16_store_stochastic((x), mix32((uint32_t)(i) * 0x9e3779b9u + seed \
                                                                  + (uint32_t)(tensor) * 0x85ebca6bu)) \
                                     : bf16_store(x))
#define NAME(kernel) adamlab_##kernel##_bf16
#define EXACT_STORE 0  /* STORE rounds */
#include "cpu_body.h"

#ifdef __FLT16_MAX__  /* a compiler with _Float16 (GCC 12, clang 15 and later): float16 storage */
#define STORAGE _Float16
#define REAL float
#define SQRT sqrtf
#define LOAD(x) ((float)(x))
#define STORE(x) ((_Float16)(x))  /* round to nearest, ties to even */
#define STORE_PARAM(x, tensor, i) STORE(x)
#define NAME(kernel) adamlab_##kernel##_f16
#define EXACT_STORE 0
#include "cpu_body.h"
#endif
