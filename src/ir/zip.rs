//! The loops behind `BinaryOp::zip_with` and `UnaryOp::map_into`: one per
//! combination of where a binary op's operands live, so that a fused
//! kernel reads its inputs where they are instead of copying them into
//! its output first. Every element gets the same `f(a, b)` whichever loop
//! runs, so the choice cannot change a bit.

/// Whether the element-wise loops run their AVX2 copies (x86-64 only). The
/// same scalar arithmetic runs in wider registers: Rust never fuses a
/// multiply and an add on its own, and each element is computed alone, so
/// the two copies agree bit for bit (`tests::wide_and_narrow_loops_agree`).
#[cfg(target_arch = "x86_64")]
pub(crate) fn wide() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
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

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::ir::{BinaryOp, Float, UnaryOp};

    /// Values that take every branch of the ops: signed zeros, both
    /// infinities, NaN, tiny, huge, and an ordinary spread.
    fn values<T: Float>() -> Vec<T> {
        let mut v: Vec<f64> = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        v.extend([1e-30, -3e-4, 5e-4, 7.9, -8.0, 40.0, -90.0, 1e30, 0.5, 2.0]);
        v.extend((0..1000).map(|i| ((i * 7919) % 2001) as f64 / 100.0 - 10.0));
        v.into_iter().map(T::from_f64).collect()
    }

    fn bits<T: Float>(v: &[T]) -> Vec<u64> {
        v.iter().map(|x| x.to_f64().to_bits()).collect()
    }

    fn check<T: Float>() {
        if !wide() {
            return;
        }
        let x = values::<T>();
        let y: Vec<T> = x.iter().rev().copied().collect();
        for &op in UnaryOp::ALL {
            let (mut narrow, mut wide_) = (x.clone(), x.clone());
            op.map_here(&mut narrow);
            // SAFETY: `wide()` said the CPU has AVX2.
            unsafe { op.map_avx2(&mut wide_) };
            assert_eq!(bits(&narrow), bits(&wide_), "{op:?} map");
            let (mut a, mut b) = (vec![T::ZERO; x.len()], vec![T::ZERO; x.len()]);
            op.map_into_here(&mut a, &x);
            // SAFETY: as above.
            unsafe { op.map_into_avx2(&mut b, &x) };
            assert_eq!(bits(&a), bits(&b), "{op:?} map_into");
        }
        for &op in BinaryOp::ALL {
            let sides = [
                Side::Slice(&y[..]),
                Side::Scalar(T::from_f64(0.75)),
                Side::Out,
            ];
            for a in [Side::Slice(&x[..]), Side::Out] {
                for b in sides {
                    let (mut narrow, mut wide_) = (y.clone(), y.clone());
                    op.zip_with_here(&mut narrow, a, b);
                    // SAFETY: as above.
                    unsafe { op.zip_with_avx2(&mut wide_, a, b) };
                    assert_eq!(bits(&narrow), bits(&wide_), "{op:?} {a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn wide_and_narrow_loops_agree() {
        check::<f32>();
        check::<f64>();
    }
}
