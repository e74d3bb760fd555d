/* The library every process loads first: no update rule (each fused step is a kernel printed
 * from adamlab/maths: by generate.py, whole or into hand-written loops such as adam8bit.h, or by
 * factored.py), only the memory floor the benchmarks measure against and what this compiler
 * can build.
 *
 * The kernels trust what they are handed: adamlab/kernels/cpu.py checks every tensor of a call
 * (device, dtype, element count, layout) against the kernel's columns before calling.
 *
 * Calling convention, the same for every kernel:
 *   count    tensors in the call
 *   pointers count rows of K data pointers: param, grad, the state tensors, then each one-number
 *            state (the step counter; NAdam's mu_product), in the columns cpu.py's table gives
 *   sizes    elements of each tensor
 *   scalars  the hyperparameters, by the names the kernel was printed with, then the seed
 *   options  OPTION_* bits
 *   threads  OpenMP threads
 */
#include "skeleton.h"

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

/* Whether this compiler has _Float16, and so every kernel a float16 version (each_storage.h). */
int adamlab_has_float16(void) {
#ifdef __FLT16_MAX__
    return 1;
#else
    return 0;
#endif
}
