#ifndef OPTIMIZERD_ADAFACTOR_KERNEL_H
#define OPTIMIZERD_ADAFACTOR_KERNEL_H

#include <stddef.h>

// Adafactor's element loops in C, compiled per instruction-set variant (kernel_variant.h). Swift's
// `AdafactorKernel` scalar loops are the reference: the same operations, and every Double sum in the
// same order (within a row or range: element i of the 8-aligned body in lane i mod 8, the lanes
// added 0 to 7, then the tail elements one by one into that total; rows added in row order).

/// R ← β̂2·R + (1−β̂2)·(mean of (s·g)² over the row + ε1), in Double (see `AdafactorKernel.RowStatistics`).
struct optimizerd_adafactor_row_statistics {
    /// R, one float per row.
    float *rows;
    double beta2;
    double eps1;
    float gradient_scale;
};

/// V ← β̂2·V + (1−β̂2)·((s·g)² + ε1), in Float (see `AdafactorKernel.SecondMoment`).
struct optimizerd_adafactor_second_moment {
    float beta2;
    float one_minus_beta2;
    float eps1;
    float gradient_scale;
};

/// The apply pass's constants (see `AdafactorKernel.Update`).
struct optimizerd_adafactor_update {
    float gradient_scale;
    /// α / max(1, RMS(U)/d).
    float step_size;
    float beta1;
    float one_minus_beta1;
    /// −wd·α (0: no decay).
    float decay;
};

/// A factored tensor seen as rows of `columns` elements, `rows` rows per slice (see
/// `AdafactorKernel.Factors`): U[r, j] = (row_factors[r]·column_factors[slice·columns + j])·(s·g).
struct optimizerd_adafactor_factors {
    size_t rows;
    size_t columns;
    const float *row_factors;
    const float *column_factors;
};

/// For each row in [first_row, end_row) of `columns` elements: R[row] updated from its mean square,
/// and every (s·g)² added into `column_sums[j]` (in row order) unless `column_sums` is NULL.
void optimizerd_adafactor_row_statistics(int variant, const float *gradient, size_t first_row, size_t end_row,
                                         size_t columns, const struct optimizerd_adafactor_row_statistics *statistics,
                                         double *column_sums);

/// Updates V over `count` elements; returns Σ ((s·g)/√V)².
double optimizerd_adafactor_second_moment(int variant, const float *gradient, float *second_moment, size_t count,
                                          const struct optimizerd_adafactor_second_moment *coefficients);

/// Σ U² over rows [first_row, end_row) of a factored tensor.
double optimizerd_adafactor_update_squares(int variant, const float *gradient, size_t first_row, size_t end_row,
                                           const struct optimizerd_adafactor_factors *factors, float scale);

/// Moves rows [first_row, end_row) of a factored tensor by U·step_size (through m when `exp_avg` is
/// not NULL, with the decoupled decay); returns ‖Δθ‖² over them.
double optimizerd_adafactor_apply(int variant, float *parameter, const float *gradient, float *exp_avg,
                                  size_t first_row, size_t end_row, const struct optimizerd_adafactor_factors *factors,
                                  const struct optimizerd_adafactor_update *update);

/// The same for an unfactored range, U = (s·g)/√V.
double optimizerd_adafactor_apply_diagonal(int variant, float *parameter, const float *gradient, float *exp_avg,
                                           const float *second_moment, size_t count,
                                           const struct optimizerd_adafactor_update *update);

#endif
