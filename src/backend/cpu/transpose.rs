//! Transposing a GEMM operand into a scratch buffer, so that
//! `matrixmultiply` packs it with contiguous reads.
//!
//! `matrixmultiply` packs A in panels of rows and B in panels of columns;
//! a row-major A (or a B given as Bᵀ, row-major) it must gather one scalar
//! at a time along a stride, which on the training step's products cost
//! more than the multiply-adds themselves (32×300 by 300×275 with B given
//! transposed: 51 against 33 µs). An 8×8 AVX transpose into a buffer is
//! several times cheaper than that gather. The packed panels, and so every
//! product, are the same whichever layout they were packed from.

use std::cell::RefCell;

#[cfg(target_arch = "x86_64")]
use super::blocks::transpose_avx;
use super::par::Pool;

/// Operands smaller than this (m·k or k·n elements) are packed from where
/// they are: their gather costs less than the call to transpose them.
const MIN_ELEMENTS: usize = 4096;

thread_local! {
    /// This thread's transposed operands (A, B), grown, never shrunk.
    static STAGED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// An operand: its elements and its (row, column) strides.
pub(super) type Operand<'a, T> = (&'a [T], (isize, isize));

/// A float whose GEMM operands may be transposed before packing.
pub(crate) trait Stage: Sized {
    /// Calls `f` with A (m×k) and B (k×n) laid out for packing; by
    /// default, as they are.
    fn staged<R>(
        _pool: &Pool,
        _mkn: (usize, usize, usize),
        a: Operand<'_, Self>,
        b: Operand<'_, Self>,
        f: impl FnOnce(Operand<'_, Self>, Operand<'_, Self>) -> R,
    ) -> R {
        f(a, b)
    }
}

/// Transposed first where `staging_pays`, as they are elsewhere.
impl Stage for f32 {
    fn staged<R>(
        pool: &Pool,
        mkn: (usize, usize, usize),
        a: Operand<'_, f32>,
        b: Operand<'_, f32>,
        f: impl FnOnce(Operand<'_, f32>, Operand<'_, f32>) -> R,
    ) -> R {
        if staging_pays() {
            transposed_first(pool, mkn, a, b, f)
        } else {
            f(a, b)
        }
    }
}

/// f64 products (gradient checks, mostly) are packed from where they are.
impl Stage for f64 {}

/// Calls `f` with A (m×k) and B (k×n), each transposed into this thread's
/// buffers first where its packing would gather: A row-major, B given as
/// Bᵀ row-major. Without AVX, or re-entered, the operands go as they are.
/// `Stage` calls it only where it pays; the tests call it on every AVX
/// host.
pub(super) fn transposed_first<R>(
    pool: &Pool,
    (m, k, n): (usize, usize, usize),
    a: Operand<'_, f32>,
    b: Operand<'_, f32>,
    f: impl FnOnce(Operand<'_, f32>, Operand<'_, f32>) -> R,
) -> R {
    let a_rows = a.1 == (k as isize, 1) && m > 1 && m * k >= MIN_ELEMENTS;
    let b_cols = b.1 == (1, k as isize) && n > 1 && k * n >= MIN_ELEMENTS;
    if !(a_rows || b_cols) || !has_avx() || a.0.len() < m * k || b.0.len() < k * n {
        return f(a, b);
    }
    STAGED.with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return f(a, b);
        };
        let (sa, sb) = &mut *s;
        let a = if a_rows {
            let ld = leading(m);
            stage(sa, k * ld);
            transpose(pool, a.0, m, k, &mut sa[..k * ld], ld);
            (&sa[..], (1, ld as isize))
        } else {
            a
        };
        let b = if b_cols {
            let ld = leading(n);
            stage(sb, k * ld);
            transpose(pool, b.0, n, k, &mut sb[..k * ld], ld);
            (&sb[..], (ld as isize, 1))
        } else {
            b
        };
        f(a, b)
    })
}

/// A row stride for `len` columns: whole 64-byte lines, and never a
/// multiple of 4 KiB, whose rows would all fall in the same cache sets.
fn leading(len: usize) -> usize {
    let ld = len.next_multiple_of(16);
    if ld.is_multiple_of(1024) { ld + 16 } else { ld }
}

fn stage(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// Whether transposing first beats `matrixmultiply`'s own packing: where
/// `matrixmultiply` multiplies f32 (the crate's own kernels, `sgemm`, do
/// where the CPU has AVX2 + FMA, unless `DELTAGRAD_CPU_GEMM` says
/// otherwise, and pack through `transpose_avx` themselves) on a CPU with
/// AVX but not AVX-512. With AVX-512, `matrixmultiply` packs with its
/// AVX-512 routine, and the transpose only added a pass: on a 2-core
/// Xeon, one thread, medians of 1,500 calls alternated (15 for 1024³),
/// 1024×250·250×100 took 962 µs as given against 1,737 with A transposed
/// first, 32×300·(275×300)ᵀ 117 against 133 with B transposed first, and
/// 1024³ 35.6 against 45.4 ms (A) and 35.9 against 46.2 ms (Bᵀ).
fn staging_pays() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx()
            && super::sgemm::Isa::chosen().is_none()
            && !std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn has_avx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `dst[c·ld + r] = src[r·cols + c]` for a row-major `rows × cols` source,
/// `dst` holding `cols` rows of `ld`. Large ones go to threads in bands of
/// source columns (destination rows). The caller has checked that AVX is
/// there and that both fit.
fn transpose(pool: &Pool, src: &[f32], rows: usize, cols: usize, dst: &mut [f32], ld: usize) {
    let band = if rows * cols >= PAR_ELEMENTS {
        BAND
    } else {
        cols.max(1)
    };
    pool.pieces(dst, band * ld, |start, part| {
        let c0 = start / ld;
        let width = part.len() / ld;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX is present (`has_avx`); see `transpose_avx` for the
        // bounds.
        unsafe {
            transpose_avx(&src[c0..], rows, width, cols, part, ld);
        }
        #[cfg(not(target_arch = "x86_64"))]
        super::blocks::scalar(&src[c0..], cols, (0, rows), (0, width), part, ld);
    });
}

/// Source columns per parallel band (a multiple of 8).
const BAND: usize = 64;
/// Operands from which the transpose is split over threads.
const PAR_ELEMENTS: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_every_shape_exactly() {
        let pool = Pool::new(2).unwrap();
        for (rows, cols) in [(1, 1), (8, 8), (37, 29), (64, 130), (9, 71), (300, 275)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let ld = leading(rows);
            let mut dst = vec![-1.0; cols * ld];
            if has_avx() {
                transpose(&pool, &src, rows, cols, &mut dst, ld);
            } else {
                super::super::blocks::scalar(&src, cols, (0, rows), (0, cols), &mut dst, ld);
            }
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * ld + r], src[r * cols + c]);
                }
            }
        }
    }
}
