/* adamlab's fused CPU steps: one pass over memory per parameter, all tensors of a group in one call.
 *
 * Each kernel restates one update of adamlab/maths/ element by element; the parity tests pin
 * the two together. The body (cpu_body.h) is compiled once per storage type: float32,
 * float64, and bfloat16 and float16 computed in float32 (each value rounded once, when stored).
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
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPTION_MAXIMIZE = 1, OPTION_DECOUPLED = 2, OPTION_AMSGRAD = 4, OPTION_NESTEROV = 8,
    OPTION_CENTERED = 16, OPTION_MOMENTUM = 32, OPTION_FIRST_STEP = 64, OPTION_STEP_F64 = 128,
    OPTION_STOCHASTIC = 256,
};

/* With OPTION_STOCHASTIC, scalars[SEED_SLOT] holds the step's random seed (the kernels' own
 * scalars come first, fewer than SEED_SLOT of them). */
#define SEED_SLOT 8
#define STOCHASTIC_SEED \
    const uint32_t seed __attribute__((unused)) = (options & OPTION_STOCHASTIC) ? (uint32_t)scalars[SEED_SLOT] | 1u : 0

/* Work is cut into chunks of at most CHUNK elements, so that a few large tensors and many
 * small ones spread alike over the threads, in one parallel region without barriers. */
#define CHUNK 32768
typedef struct { int64_t tensor, start, end; } chunk_t;

static int64_t make_chunks(int64_t count, const int64_t *sizes, chunk_t **out) {
    int64_t total = 0;
    for (int64_t t = 0; t < count; t++) total += (sizes[t] + CHUNK - 1) / CHUNK;
    chunk_t *chunks = malloc(sizeof(chunk_t) * (total > 0 ? total : 1));
    int64_t n = 0;
    for (int64_t t = 0; t < count; t++)
        for (int64_t start = 0; start < sizes[t]; start += CHUNK) {
            chunks[n].tensor = t;
            chunks[n].start = start;
            chunks[n].end = start + CHUNK < sizes[t] ? start + CHUNK : sizes[t];
            n++;
        }
    *out = chunks;
    return n;
}

/* Threads pay only for steps of at least two chunks' work: waking them costs more than a
 * small step (the 31 weights of a toy network step 3-7x slower in parallel than alone). */
static int parallel_worth_it(int64_t count, const int64_t *sizes) {
    int64_t total = 0;
    for (int64_t t = 0; t < count && total < 2 * CHUNK; t++) total += sizes[t];
    return total >= 2 * CHUNK;
}

/* Adds one to every tensor's step counter (a 0-d float32 or float64 tensor, as torch.optim
 * keeps it) and returns the new counts. */
static double *advance_steps(int64_t count, void **pointers, int columns, int64_t options) {
    double *steps = malloc(sizeof(double) * (count > 0 ? count : 1));
    for (int64_t t = 0; t < count; t++) {
        void *counter = pointers[t * columns + columns - 1];
        if (options & OPTION_STEP_F64) steps[t] = ++*(double *)counter;
        else steps[t] = ++*(float *)counter;
    }
    return steps;
}

static inline float bf16_load(uint16_t x) {
    uint32_t bits = (uint32_t)x << 16;
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* A 32-bit integer hash (Wellons' lowbias32): the random bits of stochastic rounding, a pure
 * function of seed, tensor and element, so threads need no generator of their own. */
static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* Round up (in magnitude) with probability equal to the fraction of a bfloat16 step that
 * truncation would lose, so the rounding is right on average: updates far below half a step
 * of the weight still add up, where rounding to nearest would drop every one of them. */
static inline uint16_t bf16_store_stochastic(float value, uint32_t noise) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);  /* NaN */
    return (uint16_t)((bits + (noise & 0xffffu)) >> 16);
}

/* max(a, b) and max(x, floor) as torch.maximum and clamp take them: NaN in, NaN out. */
#define MAXIMUM(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))

static inline uint16_t bf16_store(float value) {  /* round to nearest, ties to even */
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);  /* NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* 8-bit state (adamlab/maths/quantize.py): blocks of BLOCK elements with one float32 scale, and
 * the tables to find a value's nearest code without a search. A cell is picked by a float32's
 * sign, exponent and top CELL_BITS mantissa bits; it holds at most one boundary between codes,
 * so the code is the count of boundaries below the cell plus one if the next is below y. */
#define BLOCK 256
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
