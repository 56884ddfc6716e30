// Helper functions for emitted element-wise expressions (spliced into
// elementwise.wgsl and matmul.wgsl at `//@EXPR_FNS`). They reproduce the
// CPU backend's semantics where plain WGSL would differ: NaN propagation,
// no overflow to NaN, 0/1 comparison results. No bindings.

// WGSL has no literal for inf/NaN; a function argument is not constant-
// folded by the WGSL front end, so this builds them from bits.
fn dg_bits(b: u32) -> f32 {
    return bitcast<f32>(b);
}

// Compilers may assume `x != x` is false; the bit test cannot be folded.
fn dg_isnan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// NaN in either operand gives NaN (WGSL's max may return the other one).
fn dg_max(a: f32, b: f32) -> f32 {
    if (dg_isnan(a) || a >= b) {
        return a;
    }
    return b;
}

// `x < 0` is false for NaN, so NaN stays NaN.
fn dg_relu(x: f32) -> f32 {
    return select(x, 0.0, x < 0.0);
}

// exp of a large positive argument would overflow; use the form whose
// exp argument is never positive.
fn dg_sigmoid(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// Some drivers compute tanh via exp(2x) and return NaN for large |x|;
// tanh(10) is 1 in f32.
fn dg_tanh(x: f32) -> f32 {
    return select(tanh(x), sign(x), abs(x) > 10.0);
}

fn dg_gt(a: f32, b: f32) -> f32 {
    return select(0.0, 1.0, a > b);
}

fn dg_ge(a: f32, b: f32) -> f32 {
    return select(0.0, 1.0, a >= b);
}

fn dg_eq(a: f32, b: f32) -> f32 {
    return select(0.0, 1.0, a == b);
}
