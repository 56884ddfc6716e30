//! Matrix products on the CPU, through `matrixmultiply` (strided GEMM, so
//! transposed operands cost nothing).

use crate::ir::Float;

/// A float type with a GEMM.
pub trait Gemm: Float {
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

macro_rules! impl_gemm {
    ($t:ty, $gemm:path) => {
        impl Gemm for $t {
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
                // the given strides (checked before the call), and `c` as
                // m×n, row-major.
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

impl_gemm!(f32, matrixmultiply::sgemm);
impl_gemm!(f64, matrixmultiply::dgemm);
