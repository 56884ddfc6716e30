//! The loops behind `BinaryOp::zip_with` and `UnaryOp::map_into`: one per
//! combination of where a binary op's operands live, so that a fused
//! kernel reads its inputs where they are instead of copying them into
//! its output first. Every element gets the same `f(a, b)` whichever loop
//! runs, so the choice cannot change a bit.

/// Whether the element-wise loops run their AVX2 copies (x86-64 only). The
/// same scalar arithmetic runs in wider registers: Rust never fuses a
/// multiply and an add on its own, and each element is computed alone, so
/// the two copies agree bit for bit (`expr::wide_loops::wide_and_narrow_loops_agree`).
#[cfg(target_arch = "x86_64")]
pub(crate) fn wide() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Whether they run their AVX-512 copies instead: twice the lanes for the
/// loops that compute (tanh's rational function, say) rather than stream.
#[cfg(target_arch = "x86_64")]
pub(crate) fn widest() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Where one operand of an element-wise loop is.
#[derive(Clone, Copy, Debug)]
pub enum Side<'a, T> {
    /// The output's current contents (the loop updates it in place).
    Out,
    /// A slice as long as the output.
    Slice(&'a [T]),
    /// One value for every element.
    Scalar(T),
}

/// `out[i] = f(a[i], b[i])`; a `Slice` shorter than `out` shortens the
/// loop (callers pass equal lengths).
#[inline(always)]
pub(crate) fn zip_with<T: Copy, F: Fn(T, T) -> T>(
    out: &mut [T],
    a: Side<'_, T>,
    b: Side<'_, T>,
    f: F,
) {
    match (a, b) {
        (Side::Out, Side::Out) => out.iter_mut().for_each(|x| *x = f(*x, *x)),
        (Side::Out, Side::Slice(b)) => out.iter_mut().zip(b).for_each(|(x, &y)| *x = f(*x, y)),
        (Side::Out, Side::Scalar(y)) => out.iter_mut().for_each(|x| *x = f(*x, y)),
        (Side::Slice(a), Side::Out) => out.iter_mut().zip(a).for_each(|(x, &v)| *x = f(v, *x)),
        (Side::Slice(a), Side::Slice(b)) => out
            .iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(x, (&v, &y))| *x = f(v, y)),
        (Side::Slice(a), Side::Scalar(y)) => out.iter_mut().zip(a).for_each(|(x, &v)| *x = f(v, y)),
        (Side::Scalar(v), Side::Out) => out.iter_mut().for_each(|x| *x = f(v, *x)),
        (Side::Scalar(v), Side::Slice(b)) => out.iter_mut().zip(b).for_each(|(x, &y)| *x = f(v, y)),
        (Side::Scalar(v), Side::Scalar(y)) => out.fill(f(v, y)),
    }
}
