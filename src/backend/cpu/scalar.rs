//! The float types the CPU backend computes in.

use std::ops::{Add, Div, Mul, Neg, Sub};

pub trait Scalar:
    Copy
    + Default
    + PartialOrd
    + Send
    + Sync
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn abs(self) -> Self;
    fn neg_infinity() -> Self;
    /// Row-major GEMM with arbitrary strides: C = A·B (C overwritten).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        rsa: isize,
        csa: isize,
        b: &[Self],
        rsb: isize,
        csb: isize,
        c: &mut [Self],
    );
}

macro_rules! impl_scalar {
    ($t:ty, $gemm:path) => {
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn neg_infinity() -> Self {
                <$t>::NEG_INFINITY
            }
            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: &[Self],
                rsa: isize,
                csa: isize,
                b: &[Self],
                rsb: isize,
                csb: isize,
                c: &mut [Self],
            ) {
                debug_assert!(c.len() >= m * n);
                if m == 0 || n == 0 {
                    return;
                }
                if k == 0 {
                    c[..m * n].fill(0.0);
                    return;
                }
                // SAFETY: the caller sized `a` as m×k and `b` as k×n under
                // the given strides (checked by the scheduler when the
                // matmul node was built), and `c` as m×n, row-major.
                unsafe {
                    $gemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        rsa,
                        csa,
                        b.as_ptr(),
                        rsb,
                        csb,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
            }
        }
    };
}

impl_scalar!(f32, matrixmultiply::sgemm);
impl_scalar!(f64, matrixmultiply::dgemm);
