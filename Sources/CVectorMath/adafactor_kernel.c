#include "adafactor_kernel.h"

#include <stdbool.h>

#include "kernel_lanes.h"

// Every operation is rounded on its own, as in Swift's `AdafactorKernel` scalar loops (no FMA
// contraction). The loops go 8 elements at a time: the Float work is 8 lanes wide and the Double
// sums fill one 512-bit vector with AVX-512 (two 256-bit ones with AVX2).
#pragma STDC FP_CONTRACT OFF

// Column sums: Double-aligned only.
typedef kernel_d8 kernel_ud8 __attribute__((aligned(8)));

#define LOAD8(pointer, j) (*(const kernel_uf8 *)((pointer) + (j)))
#define STORE8(pointer, j, value) (*(kernel_uf8 *)((pointer) + (j)) = (value))

// The Double lanes' total as the Swift loops take it (lanes 0 to 7; all +0 when none was added). A
// macro, as vector arguments would change a function's ABI between the variants.
#define LANES_TOTAL(lanes)                                                                         \
    ({                                                                                             \
        double total_;                                                                             \
        KERNEL_LANES_SUM(lanes, total_);                                                           \
        total_;                                                                                    \
    })

static inline __attribute__((always_inline)) double square_scaled(float g, float scale) {
    double x = (double)(g * scale);
    return x * x;
}

// MARK: Row statistics (factored pass 1)

// The tail columns of one row after its body's total, then R[row] from the row's mean.
static inline __attribute__((always_inline)) void finish_row(const float *gradient, size_t row, size_t columns,
                                                             double sum,
                                                             const struct optimizerd_adafactor_row_statistics *s,
                                                             double *column_sums, bool has_columns) {
    const float *x = gradient + row * columns;
    for (size_t j = columns & ~(size_t)7; j < columns; j++) {
        double square = square_scaled(x[j], s->gradient_scale);
        if (has_columns) column_sums[j] += square;
        sum += square;
    }
    double inverse = 1 / (double)columns;
    s->rows[row] = (float)(s->beta2 * (double)s->rows[row] + (1 - s->beta2) * (sum * inverse + s->eps1));
}

// Four rows at a time, each with its own lanes; a column's sum is loaded once and given the rows'
// squares in row order, the same additions as one row after the other.
static inline __attribute__((always_inline)) void
row_statistics_loop(const float *gradient, size_t first_row, size_t end_row, size_t columns,
                    const struct optimizerd_adafactor_row_statistics *s, double *column_sums, bool has_columns) {
    size_t body = columns & ~(size_t)7;
    kernel_f8 scale = s->gradient_scale;
    size_t row = first_row;
    for (; row + 4 <= end_row; row += 4) {
        const float *x0 = gradient + row * columns, *x1 = x0 + columns, *x2 = x1 + columns, *x3 = x2 + columns;
        kernel_d8 lanes0 = 0, lanes1 = 0, lanes2 = 0, lanes3 = 0;
        for (size_t j = 0; j < body; j += 8) {
            kernel_d8 a2 = KERNEL_PRODUCT8(LOAD8(x0, j) * scale, LOAD8(x0, j) * scale);
            kernel_d8 b2 = KERNEL_PRODUCT8(LOAD8(x1, j) * scale, LOAD8(x1, j) * scale);
            kernel_d8 c2 = KERNEL_PRODUCT8(LOAD8(x2, j) * scale, LOAD8(x2, j) * scale);
            kernel_d8 d2 = KERNEL_PRODUCT8(LOAD8(x3, j) * scale, LOAD8(x3, j) * scale);
            if (has_columns) {
                kernel_d8 sums = *(const kernel_ud8 *)(column_sums + j);
                *(kernel_ud8 *)(column_sums + j) = sums + a2 + b2 + c2 + d2;
            }
            lanes0 += a2;
            lanes1 += b2;
            lanes2 += c2;
            lanes3 += d2;
        }
        finish_row(gradient, row, columns, LANES_TOTAL(lanes0), s, column_sums, has_columns);
        finish_row(gradient, row + 1, columns, LANES_TOTAL(lanes1), s, column_sums, has_columns);
        finish_row(gradient, row + 2, columns, LANES_TOTAL(lanes2), s, column_sums, has_columns);
        finish_row(gradient, row + 3, columns, LANES_TOTAL(lanes3), s, column_sums, has_columns);
    }
    for (; row < end_row; row++) {
        const float *x0 = gradient + row * columns;
        kernel_d8 lanes = 0;
        for (size_t j = 0; j < body; j += 8) {
            kernel_d8 a2 = KERNEL_PRODUCT8(LOAD8(x0, j) * scale, LOAD8(x0, j) * scale);
            if (has_columns) *(kernel_ud8 *)(column_sums + j) = *(const kernel_ud8 *)(column_sums + j) + a2;
            lanes += a2;
        }
        finish_row(gradient, row, columns, LANES_TOTAL(lanes), s, column_sums, has_columns);
    }
}

static inline __attribute__((always_inline)) void adafactor_row_pass(const float *gradient, size_t first_row,
                                                                 size_t end_row, size_t columns,
                                                                 const struct optimizerd_adafactor_row_statistics *s,
                                                                 double *column_sums) {
    if (column_sums == NULL) return row_statistics_loop(gradient, first_row, end_row, columns, s, NULL, false);
    return row_statistics_loop(gradient, first_row, end_row, columns, s, column_sums, true);
}

// MARK: V update and Σ U² (unfactored pass 1)

static inline __attribute__((always_inline)) double adafactor_moment_pass(const float *gradient, float *v, size_t count,
                                                                  const struct optimizerd_adafactor_second_moment *c) {
    kernel_d8 lanes = 0;
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        kernel_f8 x = LOAD8(gradient, i) * c->gradient_scale;
        kernel_f8 updated = LOAD8(v, i) * c->beta2 + c->one_minus_beta2 * (x * x + c->eps1);
        STORE8(v, i, updated);
        kernel_f8 u = x / __builtin_elementwise_sqrt(updated);
        lanes += KERNEL_PRODUCT8(u, u);
    }
    double sum = LANES_TOTAL(lanes);
    for (; i < count; i++) {
        float x = gradient[i] * c->gradient_scale;
        float updated = v[i] * c->beta2 + c->one_minus_beta2 * (x * x + c->eps1);
        v[i] = updated;
        double u = (double)(x / __builtin_elementwise_sqrt(updated));
        sum += u * u;
    }
    return sum;
}

// MARK: Σ U² (factored pass 2) and apply

// The column factors of a row's slice.
static inline __attribute__((always_inline)) const float *column_factors(const struct optimizerd_adafactor_factors *f,
                                                                         size_t row) {
    return f->column_factors + row / f->rows * f->columns;
}

static inline __attribute__((always_inline)) double update_square(float g, float scale, float row_factor,
                                                                  float column_factor) {
    double u = (double)((row_factor * column_factor) * (g * scale));
    return u * u;
}

// One row's Σ U²: its body's total, then its tail.
static inline __attribute__((always_inline)) double update_squares_row(const float *gradient, size_t row,
                                                                       const struct optimizerd_adafactor_factors *f,
                                                                       float scale, double sum) {
    const float *x = gradient + row * f->columns, *factors = column_factors(f, row);
    for (size_t j = f->columns & ~(size_t)7; j < f->columns; j++)
        sum += update_square(x[j], scale, f->row_factors[row], factors[j]);
    return sum;
}

// Two rows at a time, each with its own lanes, their sums added in row order.
static inline __attribute__((always_inline)) double adafactor_squares_pass(const float *gradient, size_t first_row,
                                                                   size_t end_row,
                                                                   const struct optimizerd_adafactor_factors *f,
                                                                   float scale) {
    size_t body = f->columns & ~(size_t)7;
    double sum = 0;
    size_t row = first_row;
    for (; row < end_row; row += 2) {
        bool pair = row + 2 <= end_row;
        const float *x0 = gradient + row * f->columns, *x1 = x0 + f->columns;
        const float *f0 = column_factors(f, row), *f1 = pair ? column_factors(f, row + 1) : f0;
        kernel_f8 r0 = f->row_factors[row], r1 = pair ? f->row_factors[row + 1] : r0;
        kernel_d8 lanes0 = 0, lanes1 = 0;
        if (pair) {
            for (size_t j = 0; j < body; j += 8) {
                kernel_f8 u0 = (r0 * LOAD8(f0, j)) * (LOAD8(x0, j) * scale);
                kernel_f8 u1 = (r1 * LOAD8(f1, j)) * (LOAD8(x1, j) * scale);
                lanes0 += KERNEL_PRODUCT8(u0, u0);
                lanes1 += KERNEL_PRODUCT8(u1, u1);
            }
        } else {
            for (size_t j = 0; j < body; j += 8) {
                kernel_f8 u0 = (r0 * LOAD8(f0, j)) * (LOAD8(x0, j) * scale);
                lanes0 += KERNEL_PRODUCT8(u0, u0);
            }
        }
        sum += update_squares_row(gradient, row, f, scale, LANES_TOTAL(lanes0));
        if (pair) sum += update_squares_row(gradient, row + 1, f, scale, LANES_TOTAL(lanes1));
    }
    return sum;
}

// One element vector (or one element, V = float) of the apply pass, u the preconditioned gradient
// before the step size: U = step·u; m ← β1·m + (1−β1)·U and U ← m with momentum; θ ← θ + decay·θ;
// θ ← θ − U. Sets `delta` to Δθ.
#define ADAFACTOR_APPLY(V, LOAD, STORE, i, u_in)                                                   \
    do {                                                                                           \
        V u = (u_in) * c.step_size;                                                                \
        if (momentum) {                                                                            \
            u = LOAD(exp_avg, i) * c.beta1 + c.one_minus_beta1 * u;                                \
            STORE(exp_avg, i, u);                                                                  \
        }                                                                                          \
        V old = LOAD(parameter, i);                                                                \
        V p = old;                                                                                 \
        if (decays) p = p + c.decay * p;                                                           \
        p = p - u;                                                                                 \
        STORE(parameter, i, p);                                                                    \
        delta = p - old;                                                                           \
    } while (0)
#define LOAD1(pointer, i) ((pointer)[i])
#define STORE1(pointer, i, value) ((pointer)[i] = (value))

static inline __attribute__((always_inline)) double apply_loop(float *parameter, const float *gradient, float *exp_avg,
                                                               size_t first_row, size_t end_row,
                                                               const struct optimizerd_adafactor_factors *f,
                                                               struct optimizerd_adafactor_update c, bool momentum,
                                                               bool decays) {
    size_t columns = f->columns, body = columns & ~(size_t)7;
    double sum = 0;
    for (size_t row = first_row; row < end_row; row++) {
        const float *factors = column_factors(f, row);
        float row_factor = f->row_factors[row];
        kernel_d8 lanes = 0;
        size_t j = 0;
        for (; j < body; j += 8) {
            size_t i = row * columns + j;
            kernel_f8 delta;
            ADAFACTOR_APPLY(kernel_f8, LOAD8, STORE8, i,
                            (row_factor * LOAD8(factors, j)) * (LOAD8(gradient, i) * c.gradient_scale));
            lanes += KERNEL_PRODUCT8(delta, delta);
        }
        double row_sum = LANES_TOTAL(lanes);
        for (; j < columns; j++) {
            size_t i = row * columns + j;
            float delta;
            ADAFACTOR_APPLY(float, LOAD1, STORE1, i, (row_factor * factors[j]) * (gradient[i] * c.gradient_scale));
            row_sum += (double)delta * (double)delta;
        }
        sum += row_sum;
    }
    return sum;
}

static inline __attribute__((always_inline)) double apply_diagonal_loop(float *parameter, const float *gradient,
                                                                        float *exp_avg, const float *v, size_t count,
                                                                        struct optimizerd_adafactor_update c,
                                                                        bool momentum, bool decays) {
    kernel_d8 lanes = 0;
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        kernel_f8 delta;
        ADAFACTOR_APPLY(kernel_f8, LOAD8, STORE8, i,
                        LOAD8(gradient, i) * c.gradient_scale / __builtin_elementwise_sqrt(LOAD8(v, i)));
        lanes += KERNEL_PRODUCT8(delta, delta);
    }
    double sum = LANES_TOTAL(lanes);
    for (; i < count; i++) {
        float delta;
        ADAFACTOR_APPLY(float, LOAD1, STORE1, i, gradient[i] * c.gradient_scale / __builtin_elementwise_sqrt(v[i]));
        sum += (double)delta * (double)delta;
    }
    return sum;
}

// The loops for momentum (exp_avg given) and decay, constants at each call site.
#define ADAFACTOR_OPTIONS(LOOP, ...)                                                               \
    (exp_avg != NULL ? (update->decay != 0 ? LOOP(__VA_ARGS__, true, true) : LOOP(__VA_ARGS__, true, false)) \
                     : (update->decay != 0 ? LOOP(__VA_ARGS__, false, true) : LOOP(__VA_ARGS__, false, false)))

static inline __attribute__((always_inline)) double adafactor_apply_pass(float *parameter, const float *gradient, float *exp_avg,
                                                          size_t first_row, size_t end_row,
                                                          const struct optimizerd_adafactor_factors *f,
                                                          const struct optimizerd_adafactor_update *update) {
    return ADAFACTOR_OPTIONS(apply_loop, parameter, gradient, exp_avg, first_row, end_row, f, *update);
}

static inline __attribute__((always_inline)) double adafactor_diagonal_pass(float *parameter, const float *gradient,
                                                                   float *exp_avg, const float *v, size_t count,
                                                                   const struct optimizerd_adafactor_update *update) {
    return ADAFACTOR_OPTIONS(apply_diagonal_loop, parameter, gradient, exp_avg, v, count, *update);
}

KERNEL_VARIANTS(void, optimizerd_adafactor_row_statistics, adafactor_row_pass,
                (const float *gradient, size_t first_row, size_t end_row, size_t columns,
                 const struct optimizerd_adafactor_row_statistics *statistics, double *column_sums),
                (gradient, first_row, end_row, columns, statistics, column_sums))

KERNEL_VARIANTS(double, optimizerd_adafactor_second_moment, adafactor_moment_pass,
                (const float *gradient, float *second_moment, size_t count,
                 const struct optimizerd_adafactor_second_moment *coefficients),
                (gradient, second_moment, count, coefficients))

KERNEL_VARIANTS(double, optimizerd_adafactor_update_squares, adafactor_squares_pass,
                (const float *gradient, size_t first_row, size_t end_row,
                 const struct optimizerd_adafactor_factors *factors, float scale),
                (gradient, first_row, end_row, factors, scale))

KERNEL_VARIANTS(double, optimizerd_adafactor_apply, adafactor_apply_pass,
                (float *parameter, const float *gradient, float *exp_avg, size_t first_row, size_t end_row,
                 const struct optimizerd_adafactor_factors *factors, const struct optimizerd_adafactor_update *update),
                (parameter, gradient, exp_avg, first_row, end_row, factors, update))

KERNEL_VARIANTS(double, optimizerd_adafactor_apply_diagonal, adafactor_diagonal_pass,
                (float *parameter, const float *gradient, float *exp_avg, const float *second_moment, size_t count,
                 const struct optimizerd_adafactor_update *update),
                (parameter, gradient, exp_avg, second_moment, count, update))
