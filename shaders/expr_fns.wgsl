// Helper functions for emitted element-wise expressions (spliced into
// elementwise.wgsl and matmul.wgsl at `//@EXPR_FNS`, followed by one
// function per table op, generated from the op tables in src/ir/). They
// reproduce the CPU backend's semantics where plain WGSL would differ.
// No bindings.

// WGSL has no literal for inf/NaN; a function argument is not constant-
// folded by the WGSL front end, so this builds them from bits.
fn dg_bits(b: u32) -> f32 {
    return bitcast<f32>(b);
}

// Compilers may assume `x != x` is false; the bit test cannot be folded.
fn dg_isnan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn dg_nan() -> f32 {
    return dg_bits(0x7fc00000u);
}

// log(1 + x) (WGSL has no log1p). For |x| < 0.25 the series
// 2·atanh(s) = 2(s + s³/3 + … + s¹¹/11), s = x/(2 + x), |s| < 0.15: exact
// to f32 precision even where a GPU's log has only 2⁻²¹ absolute accuracy.
fn dg_log1p(x: f32) -> f32 {
    if (dg_isnan(x) || x < -1.0) {
        return dg_nan();
    }
    if (abs(x) < 0.25) {
        let s = x / (2.0 + x);
        let s2 = s * s;
        let p = 1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 / 11.0))));
        return 2.0 * s * p;
    }
    return log(1.0 + x);
}

// eˣ − 1 (WGSL has no expm1). For |x| < 0.25 the Taylor series to x⁹/9!
// (truncation error below 1e-11 relative); beyond, exp(x) − 1 loses at
// most a few ulp of exp(x) ≥ 1.28 or ≤ 0.78 against a result ≥ 0.22.
fn dg_expm1(x: f32) -> f32 {
    if (dg_isnan(x)) {
        return x;
    }
    if (abs(x) < 0.25) {
        return x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0
            + x * (1.0 / 720.0 + x * (1.0 / 5040.0 + x * (1.0 / 40320.0 + x / 362880.0))))))));
    }
    if (x < -88.0) {
        return -1.0;
    }
    return exp(x) - 1.0;
}

// aᵇ with Rust's `powf` semantics (WGSL's pow is undefined for a < 0 and
// for a = b = 0): b = 0 or a = 1 give 1 (even for NaN); a negative base
// needs an integer exponent (else NaN) and an odd one keeps the sign
// (also for a = −0); 0 to a negative power is ∞; |a| = 1 to ±∞ is 1.
fn dg_pow(a: f32, b: f32) -> f32 {
    let inf = dg_bits(0x7f800000u);
    if (b == 0.0 || a == 1.0) {
        return 1.0;
    }
    if (dg_isnan(a) || dg_isnan(b)) {
        return dg_nan();
    }
    let m = abs(a);
    // ±∞ count as (even) integers.
    let b_int = floor(b) == b;
    if (a < 0.0 && !b_int) {
        return dg_nan();
    }
    var r: f32;
    if (m == 0.0) {
        r = select(inf, 0.0, b > 0.0);
    } else if (m == inf) {
        r = select(0.0, inf, b > 0.0);
    } else if (abs(b) == inf) {
        if (m == 1.0) {
            r = 1.0;
        } else {
            r = select(0.0, inf, (m > 1.0) == (b > 0.0));
        }
    } else {
        r = exp2(b * log2(m));
    }
    // f32 values of 2²⁴ and more are even integers.
    let odd = b_int && abs(b) < 16777216.0 && fract(b * 0.5) != 0.0;
    if (odd && (bitcast<u32>(a) & 0x80000000u) != 0u) {
        r = -r;
    }
    return r;
}
