import CVectorMath

/// The IEEE square root of every lane in one vector instruction: the same bits as
/// `Float.squareRoot()` lane by lane. `SIMD8.squareRoot()` is lowered to eight calls of the C
/// library's `sqrtf` with an errno check, which left every kernel with a square root at a third of
/// the memory bandwidth.
@inline(__always)
func squareRoot(_ x: SIMD8<Float>) -> SIMD8<Float> {
    optimizerd_sqrt8(x)
}

/// The IEEE square root of every lane (see the `Float` overload).
@inline(__always)
func squareRoot(_ x: SIMD8<Double>) -> SIMD8<Double> {
    optimizerd_sqrt8d(x)
}

/// Every lane converted to Double (exact).
@inline(__always)
func widen(_ x: SIMD8<Float>) -> SIMD8<Double> {
    optimizerd_widen8(x)
}

/// Every lane rounded to the nearest Float.
@inline(__always)
func narrow(_ x: SIMD8<Double>) -> SIMD8<Float> {
    optimizerd_narrow8(x)
}

/// `b` where `a < b`, else `a`, lane by lane: the same as `pointwiseMax(a, b)`.
@inline(__always)
func maximum(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
    optimizerd_max8(a, b)
}

/// `a · b + c` rounded once, lane by lane: the same bits as `c.addingProduct(a, b)` per lane.
@inline(__always)
func fusedMultiplyAdd(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>) -> SIMD8<Float> {
    optimizerd_fma8(a, b, c)
}
