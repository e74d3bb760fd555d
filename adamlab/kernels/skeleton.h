#ifndef ADAMLAB_SKELETON_H
#define ADAMLAB_SKELETON_H
/* What every fused CPU kernel shares, hand-written once: the calling convention's option bits,
 * the cutting of a call's tensors into chunks for the threads, and the loads and stores of each
 * storage type (bfloat16 rounding, to nearest or stochastic; storage.h names them per type). No
 * update rule is here: those are printed from adamlab/maths (generate.py, factored.py), whole or
 * into a hand-written loop (adam8bit.h).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* constants.h is written by cpu.py from its tables: the OPTION_* bits, the 8-bit BLOCK. */
#include "constants.h"

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

/* max(a, b) and max(x, floor) as torch.maximum and clamp take them: NaN in, NaN out; min too.
 * One select on one condition: nested selects kept a summing loop from vectorizing (GCC 12). */
#define MAXIMUM(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define MINIMUM(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
/* torch.fmax's: the other where one is NaN. */
#define FMAX(a, b) (((b) != (b) || (a) > (b)) ? (a) : (b))
/* torch.sign's: -1, 0 or 1, never -0 (x + 0 is +0 for either zero), and NaN stays NaN (NaN + 0).
 * Selects of the value's own type, so that the loop vectorizes. */
#define SIGN(x) ((x) > 0 ? 1 : (x) < 0 ? -1 : (x) + 0)

static inline uint16_t bf16_store(float value) {  /* round to nearest, ties to even */
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);  /* NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

#endif
