/* Adafactor's kernel for one storage type: included once for each by each_storage.h. */
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

void NAME(adamlab_adafactor)(int64_t count, void **pointers, const int64_t *sizes, const double *scalars,
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

