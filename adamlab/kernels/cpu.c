/* adamlab's one hand-written fused CPU step: Adafactor's, whose factored second moment is made
 * of row and column means of each matrix (cpu_body.h), and the memory floor the benchmarks
 * measure against. Every other kernel is printed from adamlab/maths by generate.py: whole (the
 * elementwise rules, and LAMB with its norms), or into a hand-written loop (adam8bit.h). The
 * body is compiled once per storage type (each_storage.h).
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
 *   pointers count rows of K data pointers: param, grad, the state tensors, then each one-number
 *            state (the step counter; NAdam's mu_product), in the columns cpu.py's table gives
 *   sizes    elements of each tensor
 *   scalars  the hyperparameters, in the order each kernel documents
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

#define TEMPLATE "cpu_body.h"
#include "each_storage.h"
