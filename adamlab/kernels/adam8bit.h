/* 8-bit Adam's loops, written by hand: each block of BLOCK elements is dequantized, stepped by
 * the maths and quantized again, by one thread. The step itself is not here: it is printed from
 * adamlab.maths.adam into MATHS_* (generate.templated), and this file is included once per
 * storage type by each_storage.h.
 *
 * columns: param, grad, m codes, v codes (uint8), m scales, v scales (float32, one per block),
 * the code tables, step. Chunks hold whole blocks (CHUNK is a multiple of BLOCK). */
#ifndef ADAMLAB_CODE_TABLES
#define ADAMLAB_CODE_TABLES
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
#endif

static inline uint8_t NAME(nearest_code)(REAL y, const code_tables_t *tables, int table) {
    float rounded = (float)y;  /* picks the cell; the comparison below is in y's own precision */
    uint32_t bits;
    memcpy(&bits, &rounded, sizeof bits);
    int exponent = (int)((bits >> 23) & 0xff) - 127 - LOWEST_EXPONENT;
    int cell = exponent < 0 ? 0
             : exponent >= -LOWEST_EXPONENT ? CELLS_PER_SIGN - 1
             : 1 + (exponent << CELL_BITS) + (int)((bits >> (23 - CELL_BITS)) & ((1 << CELL_BITS) - 1));
    int below = tables->cell[table][cell + (int)(bits >> 31) * CELLS_PER_SIGN];
    return (uint8_t)(below + ((REAL)tables->bound[table][below] < y));
}

void NAME(KERNEL_NAME)(int64_t count, void **pointers, const int64_t *sizes, const double *scalars,
                       int64_t options, int threads) {
    const int columns = 8;
    MATHS_HYPERPARAMETERS
    chunk_t *chunks;
    int64_t chunk_count = make_chunks(count, sizes, &chunks);
#pragma omp parallel for schedule(static) num_threads(threads) if (chunk_count > 1 && parallel_worth_it(count, sizes))
    for (int64_t c = 0; c < chunk_count; c++) {
        const int64_t tensor = chunks[c].tensor;
        void **row = pointers + tensor * columns;
        STORAGE *restrict param = row[0], *restrict grad = row[1];
        uint8_t *restrict m_codes = row[2], *restrict v_codes = row[3];
        float *restrict m_scales = row[4], *restrict v_scales = row[5];
        const code_tables_t *tables = row[6];
        const double n_step = (options & OPTION_STEP_F64) ? *(double *)row[7] : *(float *)row[7];
        MATHS_NUMBERS
        for (int64_t start = chunks[c].start; start < chunks[c].end; start += BLOCK) {
            const int64_t block = start / BLOCK;
            const int n = chunks[c].end - start < BLOCK ? (int)(chunks[c].end - start) : BLOCK;
            const REAL m_scale = m_scales[block], v_scale = v_scales[block];
            /* m_poison and v_poison sum m * 0 and v * 0: NaN if any moment is NaN or infinite
             * (0 * inf is NaN), else 0; a sum, so it vectorizes with the maxima. */
            REAL m_new[BLOCK], v_new[BLOCK], m_max = 0, v_max = 0, m_poison = 0, v_poison = 0;
            /* simd: the maxima and sums may be taken in any order, so the loop vectorizes (with gathers). */
#pragma omp simd reduction(max : m_max, v_max) reduction(+ : m_poison, v_poison)
            for (int j = 0; j < n; j++) {
                const int64_t i = start + j;
                const REAL x_param = LOAD(param[i]), x_grad = LOAD(grad[i]);
                const REAL x_m = (REAL)tables->code[0][m_codes[i]] * m_scale;  /* dequantized */
                const REAL x_v = (REAL)tables->code[1][v_codes[i]] * v_scale;
                MATHS_ELEMENT
                const REAL m = MATHS_NEW_m, v = MATHS_NEW_v;
                m_new[j] = m;
                v_new[j] = v;
                const REAL magnitude = FABS(m);
                m_max = magnitude > m_max ? magnitude : m_max;
                v_max = v > v_max ? v : v_max;
                m_poison += m * 0;
                v_poison += v * 0;
                param[i] = STORE_PARAM(MATHS_NEW_param, tensor, i);
            }
            /* The scale is rounded to float32 before its inverse is taken, as quantize() does. A
             * block with a non-finite moment, or one whose largest overflows float32, keeps a NaN
             * scale and codes 0, as quantize() does: the whole block is NaN from the next step. */
            const float m_kept = m_poison != 0 || !isfinite((float)m_max) ? NAN : (float)m_max;
            const float v_kept = v_poison != 0 || !isfinite((float)v_max) ? NAN : (float)v_max;
            const REAL m_inverse = 1 / (m_kept > 0 ? (REAL)m_kept : 1), v_inverse = 1 / (v_kept > 0 ? (REAL)v_kept : 1);
            m_scales[block] = m_kept;
            v_scales[block] = v_kept;
#pragma omp simd
            for (int j = 0; j < n; j++) {
                m_codes[start + j] = NAME(nearest_code)(m_new[j] * m_inverse, tables, 0);
                v_codes[start + j] = NAME(nearest_code)(v_new[j] * v_inverse, tables, 1);
            }
            if (m_kept != m_kept) memset(m_codes + start, 0, (size_t)n);  /* rare: kept out of the loop above */
            if (v_kept != v_kept) memset(v_codes + start, 0, (size_t)n);
        }
    }
    free(chunks);
    for (int64_t tensor = 0; tensor < count; tensor++) {  /* the new step, after every chunk has read the old */
        void *counter = pointers[tensor * columns + 7];
        const double n_step = (options & OPTION_STEP_F64) ? *(double *)counter : *(float *)counter;
        MATHS_NEW_NUMBERS
        if (options & OPTION_STEP_F64) *(double *)counter = y_step;
        else *(float *)counter = (float)y_step;
    }
}
