/* The kernels for one storage type: included by cpu.c with STORAGE, REAL, SQRT, LOAD, STORE and
 * NAME set. Everything inside a loop stays in REAL: one double in a float expression would make
 * the whole of it double, at half the vector width. */
#define FOR_EACH_CHUNK                                                         \
    STOCHASTIC_SEED;                                                           \
    chunk_t *chunks;                                                           \
    int64_t chunk_count = make_chunks(count, sizes, &chunks);                  \
    _Pragma("omp parallel for schedule(static) num_threads(threads) if (chunk_count > 1 && parallel_worth_it(count, sizes))") \
    for (int64_t c = 0; c < chunk_count; c++)
#define COLUMN(k) ((STORAGE *restrict)pointers[chunks[c].tensor * columns + (k)])
/* g + decay * theta, the L2 penalty, only where there is one: as the maths skips it, so that an
 * infinite theta does not make 0 * inf = NaN of a gradient that has no penalty. */
#define WITH_L2(g, decay, theta) ((decay) != 0 ? (g) + (decay) * (theta) : (g))

/* 8-bit Adam's settings, from its scalars (by name: cpu.py's SCALARS): the settings,
 * the bias corrections of step t folded into two constants, and the new theta from the new m, v. */
#define ADAM_SETTINGS                                                                              \
    const REAL beta1 = scalars[ADAM8BIT_BETA1], beta2 = scalars[ADAM8BIT_BETA2], eps = scalars[ADAM8BIT_EPS]; \
    const int decoupled = (options & OPTION_DECOUPLED) != 0;                                       \
    const REAL l2 = decoupled ? 0 : scalars[ADAM8BIT_WEIGHT_DECAY];                                 \
    const REAL shrink = decoupled ? 1 - scalars[ADAM8BIT_LR] * scalars[ADAM8BIT_WEIGHT_DECAY] : 1;  \
    const REAL sign = (options & OPTION_MAXIMIZE) ? -1 : 1
#define ADAM_CORRECTIONS(t)                                                                        \
    const REAL step_size = scalars[ADAM8BIT_LR] / (1 - pow(scalars[ADAM8BIT_BETA1], (t)));         \
    const REAL root_correction2 = 1 / sqrt(1 - pow(scalars[ADAM8BIT_BETA2], (t)))
/* theta - lr * m_hat / (sqrt(v_hat) + eps), after AdamW's shrink. */
#define ADAM_THETA(theta, m, v) ((theta) * shrink - step_size * (m) / (SQRT(v) * root_correction2 + eps))

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

/* 8-bit Adam and AdamW. scalars: ADAM8BIT_*, named in cpu.py.
 * columns: param, grad, m codes, v codes (uint8), m scales, v scales (float32, one per block),
 * the code tables, step. Chunks hold whole blocks (CHUNK is a multiple of BLOCK), so each block
 * is dequantized, stepped and requantized by one thread, its new m and v kept in registers and
 * a small stack buffer between the two. */
void NAME(adam8bit)(int64_t count, void **pointers, const int64_t *sizes, const double *scalars,
                    int64_t options, int threads) {
    const int columns = 8;
    ADAM_SETTINGS;
    double *steps = advance_steps(count, pointers, columns, options);
    FOR_EACH_CHUNK {
        ADAM_CORRECTIONS(steps[chunks[c].tensor]);
        STORAGE *restrict param = COLUMN(0), *restrict grad = COLUMN(1);
        uint8_t *restrict m_codes = pointers[chunks[c].tensor * columns + 2];
        uint8_t *restrict v_codes = pointers[chunks[c].tensor * columns + 3];
        float *restrict m_scales = pointers[chunks[c].tensor * columns + 4];
        float *restrict v_scales = pointers[chunks[c].tensor * columns + 5];
        const code_tables_t *tables = pointers[chunks[c].tensor * columns + 6];
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
                REAL theta = LOAD(param[i]);
                REAL g = WITH_L2(sign * LOAD(grad[i]), l2, theta);
                REAL m = beta1 * ((REAL)tables->code[0][m_codes[i]] * m_scale) + (1 - beta1) * g;
                REAL v = beta2 * ((REAL)tables->code[1][v_codes[i]] * v_scale) + (1 - beta2) * g * g;
                m_new[j] = m;
                v_new[j] = v;
                REAL magnitude = m < 0 ? -m : m;
                m_max = magnitude > m_max ? magnitude : m_max;
                v_max = v > v_max ? v : v_max;
                m_poison += m * 0;
                v_poison += v * 0;
                param[i] = STORE_PARAM(ADAM_THETA(theta, m, v), chunks[c].tensor, i);
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
    free(steps);
}

/* LAMB. scalars: LAMB_*, named in cpu.py. columns: param, grad, exp_avg, exp_avg_sq, step.
 * Two passes: the first computes the new m, v and u and sums each chunk's theta^2 and u^2; the
 * trust ratio of each tensor follows from its chunks' sums; the second steps with them. float32
 * and float64 store m and v in the first pass and read them back; a half type, whose stored m
 * and v are rounded, computes them again from the old state in the second and stores them
 * there, so both passes use them unrounded, as the simple path does. */
static inline REAL NAME(lamb_direction)(REAL m, REAL v, REAL theta, REAL inverse_correction1,
                                        REAL inverse_root_correction2, REAL eps, REAL decay) {
    /* m_hat / (sqrt(v_hat) + eps) + decay * theta, with one division and one root. */
    return m * inverse_correction1 / (SQRT(v) * inverse_root_correction2 + eps) + decay * theta;
}

void NAME(lamb)(int64_t count, void **pointers, const int64_t *sizes, const double *scalars,
                int64_t options, int threads) {
    const int columns = 5;
    const REAL beta1 = scalars[LAMB_BETA1], beta2 = scalars[LAMB_BETA2], eps = scalars[LAMB_EPS];
    const REAL decay = scalars[LAMB_WEIGHT_DECAY];
    const REAL sign = (options & OPTION_MAXIMIZE) ? -1 : 1;
    double *steps = advance_steps(count, pointers, columns, options);
    double *weight_sq = calloc(count > 0 ? count : 1, sizeof(double));
    double *update_sq = calloc(count > 0 ? count : 1, sizeof(double));
    double *ratios = malloc(sizeof(double) * (count > 0 ? count : 1));
    STOCHASTIC_SEED;
    chunk_t *chunks;
    int64_t chunk_count = make_chunks(count, sizes, &chunks);
    double *partial = malloc(sizeof(double) * 2 * (chunk_count > 0 ? chunk_count : 1));
#pragma omp parallel for schedule(static) num_threads(threads) if (chunk_count > 1 && parallel_worth_it(count, sizes))
    for (int64_t c = 0; c < chunk_count; c++) {
        const double t = steps[chunks[c].tensor];
        const REAL inverse_correction1 = 1 / (1 - pow(scalars[LAMB_BETA1], t));
        const REAL inverse_root_correction2 = 1 / sqrt(1 - pow(scalars[LAMB_BETA2], t));
        STORAGE *restrict param = COLUMN(0), *restrict grad = COLUMN(1);
        STORAGE *restrict exp_avg = COLUMN(2), *restrict exp_avg_sq = COLUMN(3);
        double weight = 0, update = 0;
        /* simd reduction: the sums may be reordered, so the loop vectorizes. */
#pragma omp simd reduction(+ : weight, update)
        for (int64_t i = chunks[c].start; i < chunks[c].end; i++) {
            REAL theta = LOAD(param[i]);
            REAL g = sign * LOAD(grad[i]);
            REAL m = beta1 * LOAD(exp_avg[i]) + (1 - beta1) * g;
            REAL v = beta2 * LOAD(exp_avg_sq[i]) + (1 - beta2) * g * g;
            if (EXACT_STORE) {  /* stored as they are: the second pass reads them back */
                exp_avg[i] = STORE(m);
                exp_avg_sq[i] = STORE(v);
            }
            REAL u = NAME(lamb_direction)(m, v, theta, inverse_correction1, inverse_root_correction2, eps, decay);
            weight += (double)theta * theta;
            update += (double)u * u;
        }
        partial[2 * c] = weight;
        partial[2 * c + 1] = update;
    }
    for (int64_t c = 0; c < chunk_count; c++) {
        weight_sq[chunks[c].tensor] += partial[2 * c];
        update_sq[chunks[c].tensor] += partial[2 * c + 1];
    }
    for (int64_t t = 0; t < count; t++)  /* ||theta|| / ||u||, or 1 when either is 0 */
        ratios[t] = weight_sq[t] > 0 && update_sq[t] > 0 ? sqrt(weight_sq[t]) / sqrt(update_sq[t]) : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (chunk_count > 1 && parallel_worth_it(count, sizes))
    for (int64_t c = 0; c < chunk_count; c++) {
        const double t = steps[chunks[c].tensor];
        const REAL inverse_correction1 = 1 / (1 - pow(scalars[LAMB_BETA1], t));
        const REAL inverse_root_correction2 = 1 / sqrt(1 - pow(scalars[LAMB_BETA2], t));
        const REAL scale = (REAL)scalars[LAMB_LR] * (REAL)ratios[chunks[c].tensor];
        STORAGE *restrict param = COLUMN(0), *restrict grad = COLUMN(1);
        STORAGE *restrict exp_avg = COLUMN(2), *restrict exp_avg_sq = COLUMN(3);
        for (int64_t i = chunks[c].start; i < chunks[c].end; i++) {
            REAL theta = LOAD(param[i]), m, v;
            if (EXACT_STORE) {
                m = LOAD(exp_avg[i]);
                v = LOAD(exp_avg_sq[i]);
            } else {  /* from the old state again: what a half type stores is rounded */
                REAL g = sign * LOAD(grad[i]);
                m = beta1 * LOAD(exp_avg[i]) + (1 - beta1) * g;
                v = beta2 * LOAD(exp_avg_sq[i]) + (1 - beta2) * g * g;
                exp_avg[i] = STORE(m);
                exp_avg_sq[i] = STORE(v);
            }
            REAL u = NAME(lamb_direction)(m, v, theta, inverse_correction1, inverse_root_correction2, eps, decay);
            param[i] = STORE_PARAM(theta - scale * u, chunks[c].tensor, i);
        }
    }
    free(partial);
    free(chunks);
    free(ratios);
    free(update_sq);
    free(weight_sq);
    free(steps);
}

/* Adafactor. scalars: ADAFACTOR_*, named in cpu.py.
 * columns: param, grad, R (or V for a vector), C (or V again), shape (int64: columns, rows of one
 * matrix; 0 columns for a vector), step. A tensor at a time, each in passes parallel over its rows:
 * the sums of g^2 by row and by column and of theta^2; R and C (or V); the sum of u^2; the step. */
static inline REAL NAME(adafactor_u)(REAL g, REAL v_hat, REAL floor) {
    return g / SQRT(MAXIMUM(v_hat, floor));  /* torch's clamp: a NaN estimate stays NaN */
}

/* The step size: rho times the weights' RMS (at least eps2), over the update's RMS clipped at d.
 * Both maxima drop a NaN, as torch.optim's Python max(eps2, rms) and max(1, clip) do. */
static inline double NAME(adafactor_step_size)(double theta_sq, double u_sq, int64_t n, double eps2,
                                               double rho, double d) {
    const double rms = sqrt(theta_sq / n), clip = sqrt(u_sq / n) / d;
    return (rms > eps2 ? rms : eps2) * rho / (clip > 1 ? clip : 1);
}

void NAME(adafactor)(int64_t count, void **pointers, const int64_t *sizes, const double *scalars,
                     int64_t options, int threads) {
    const int columns_per_row = 6;
    const REAL sign = (options & OPTION_MAXIMIZE) ? -1 : 1;
    const double lr = scalars[ADAFACTOR_LR], beta2_decay = scalars[ADAFACTOR_BETA2_DECAY];
    const double eps1 = scalars[ADAFACTOR_EPS1], eps2 = scalars[ADAFACTOR_EPS2], d = scalars[ADAFACTOR_D];
    const double shrink = 1 - lr * scalars[ADAFACTOR_WEIGHT_DECAY];
    const REAL floor = (REAL)(eps1 * eps1);
    STOCHASTIC_SEED;
    double *steps = advance_steps(count, pointers, columns_per_row, options);
    for (int64_t t = 0; t < count; t++) {
        void **row = pointers + t * columns_per_row;
        STORAGE *restrict param = row[0], *restrict grad = row[1];
        STORAGE *restrict first = row[2], *restrict second = row[3];
        const int64_t *shape = row[4];
        const int64_t n = sizes[t], width = shape[0], height = shape[1];
        const double weight = pow(steps[t], beta2_decay);
        const double rho = lr < 1 / sqrt(steps[t]) ? lr : 1 / sqrt(steps[t]);
        double theta_sq = 0, u_sq = 0;
        if (n == 0) continue;
        if (width == 0) {  /* a vector: V, a moving average of g^2 */
#pragma omp parallel for reduction(+ : theta_sq, u_sq) num_threads(threads) if (n > CHUNK)
            for (int64_t i = 0; i < n; i++) {
                REAL theta = LOAD(param[i]), g = sign * LOAD(grad[i]);
                REAL v = LOAD(first[i]) + (REAL)weight * (g * g - LOAD(first[i]));
                first[i] = STORE(v);
                REAL u = NAME(adafactor_u)(g, LOAD(first[i]), floor);
                theta_sq += (double)theta * theta;
                u_sq += (double)u * u;
            }
        } else {  /* matrices of height x width, n / (height * width) of them */
            const int64_t rows = n / width, matrices = rows / height;
            double *row_means = malloc(sizeof(double) * (size_t)matrices);  /* of R, one per matrix */
#pragma omp parallel for reduction(+ : theta_sq) num_threads(threads) if (n > CHUNK)
            for (int64_t r = 0; r < rows; r++) {
                double sum = 0;
                for (int64_t c = 0; c < width; c++) {
                    REAL g = LOAD(grad[r * width + c]), theta = LOAD(param[r * width + c]);
                    sum += (double)g * g;
                    theta_sq += (double)theta * theta;
                }
                REAL old = LOAD(first[r]);
                first[r] = STORE(old + (REAL)weight * ((REAL)(sum / width) - old));
            }
            /* By strips of 64 columns: each thread owns its strips and reads each row's part
             * of a strip, 64 contiguous elements, so the pass streams rather than strides. */
#pragma omp parallel for num_threads(threads) if (n > CHUNK)
            for (int64_t start = 0; start < width; start += 64) {
                const int64_t end = start + 64 < width ? start + 64 : width;
                for (int64_t m = 0; m < matrices; m++) {
                    double sums[64] = {0};
                    for (int64_t r = m * height; r < (m + 1) * height; r++)
                        for (int64_t c = start; c < end; c++) {
                            REAL g = LOAD(grad[r * width + c]);
                            sums[c - start] += (double)g * g;
                        }
                    for (int64_t c = start; c < end; c++) {
                        REAL old = LOAD(second[m * width + c]);
                        second[m * width + c] = STORE(old + (REAL)weight * ((REAL)(sums[c - start] / height) - old));
                    }
                }
            }
            for (int64_t m = 0; m < matrices; m++) {
                double sum = 0;
                for (int64_t r = m * height; r < (m + 1) * height; r++) sum += LOAD(first[r]);
                REAL mean = (REAL)(sum / height);
                row_means[m] = MAXIMUM(mean, (REAL)eps1);
            }
#pragma omp parallel for reduction(+ : u_sq) num_threads(threads) if (n > CHUNK)
            for (int64_t r = 0; r < rows; r++) {
                const int64_t m = r / height;
                const REAL scale = LOAD(first[r]) / (REAL)row_means[m];
                for (int64_t c = 0; c < width; c++) {
                    REAL u = NAME(adafactor_u)(sign * LOAD(grad[r * width + c]), scale * LOAD(second[m * width + c]), floor);
                    u_sq += (double)u * u;
                }
            }
            const REAL step_size = (REAL)NAME(adafactor_step_size)(theta_sq, u_sq, n, eps2, rho, d);
            const REAL decay = (REAL)shrink;
#pragma omp parallel for num_threads(threads) if (n > CHUNK)
            for (int64_t r = 0; r < rows; r++) {
                const int64_t m = r / height;
                const REAL scale = LOAD(first[r]) / (REAL)row_means[m];
                for (int64_t c = 0; c < width; c++) {
                    const int64_t i = r * width + c;
                    REAL u = NAME(adafactor_u)(sign * LOAD(grad[i]), scale * LOAD(second[m * width + c]), floor);
                    param[i] = STORE_PARAM(LOAD(param[i]) * decay - step_size * u, t, i);
                }
            }
            free(row_means);
            continue;
        }
        const REAL step_size = (REAL)NAME(adafactor_step_size)(theta_sq, u_sq, n, eps2, rho, d);
        const REAL decay = (REAL)shrink;
#pragma omp parallel for num_threads(threads) if (n > CHUNK)
        for (int64_t i = 0; i < n; i++) {
            REAL u = NAME(adafactor_u)(sign * LOAD(grad[i]), LOAD(first[i]), floor);
            param[i] = STORE_PARAM(LOAD(param[i]) * decay - step_size * u, t, i);
        }
    }
    free(steps);
}

#undef SQRT
#undef ADAM_SETTINGS
#undef ADAM_CORRECTIONS
#undef ADAM_THETA
#undef FOR_EACH_CHUNK
#undef COLUMN
#undef WITH_L2
#undef EXACT_STORE
#undef STORAGE
#undef REAL
#undef LOAD
#undef STORE
#undef STORE_PARAM
#undef NAME
