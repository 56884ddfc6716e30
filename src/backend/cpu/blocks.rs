//! Transposing a block of a matrix, 8×8 elements at a time through AVX
//! registers: what staging operands for `matrixmultiply` (`transpose`)
//! and packing B given as Bᵀ (`sgemm`) both do.

/// Rows `r0..r1`, columns `c0..c1` of the transpose, one element at a
/// time (`stride`: the source's row stride).
pub(super) fn scalar(
    src: &[f32],
    stride: usize,
    (r0, r1): (usize, usize),
    (c0, c1): (usize, usize),
    dst: &mut [f32],
    ld: usize,
) {
    for r in r0..r1 {
        for c in c0..c1 {
            dst[c * ld + r] = src[r * stride + c];
        }
    }
}

/// Blocks of 8×8 through AVX registers (unpack, shuffle, lane swap), in
/// tiles of 64×64 so that the lines a tile reads and writes stay in L1;
/// the ragged right and bottom edges element by element.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub(super) unsafe fn transpose_avx(
    src: &[f32],
    rows: usize,
    cols: usize,
    stride: usize,
    dst: &mut [f32],
    ld: usize,
) {
    use std::arch::x86_64::*;
    const TILE: usize = 64;
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        stride >= cols
            && src.len() >= (rows - 1) * stride + cols
            && ld >= rows
            && dst.len() >= (cols - 1) * ld + rows
    );
    let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    for rt in (0..r8).step_by(TILE) {
        for ct in (0..c8).step_by(TILE) {
            for r in (rt..(rt + TILE).min(r8)).step_by(8) {
                for c in (ct..(ct + TILE).min(c8)).step_by(8) {
                    // SAFETY: rows r..r + 8 and columns c..c + 8 lie inside
                    // the source (r + 8 ≤ rows, c + 8 ≤ cols), and their
                    // images, rows c..c + 8 and columns r..r + 8 of the
                    // destination, inside it (the assert above).
                    unsafe {
                        let p = sp.add(r * stride + c);
                        let row = |i: usize| _mm256_loadu_ps(p.add(i * stride));
                        let (x0, x1, x2, x3) = (row(0), row(1), row(2), row(3));
                        let (x4, x5, x6, x7) = (row(4), row(5), row(6), row(7));
                        let (t0, t1) = (_mm256_unpacklo_ps(x0, x1), _mm256_unpackhi_ps(x0, x1));
                        let (t2, t3) = (_mm256_unpacklo_ps(x2, x3), _mm256_unpackhi_ps(x2, x3));
                        let (t4, t5) = (_mm256_unpacklo_ps(x4, x5), _mm256_unpackhi_ps(x4, x5));
                        let (t6, t7) = (_mm256_unpacklo_ps(x6, x7), _mm256_unpackhi_ps(x6, x7));
                        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                        let q = dp.add(c * ld + r);
                        _mm256_storeu_ps(q, _mm256_permute2f128_ps::<0x20>(s0, s4));
                        _mm256_storeu_ps(q.add(ld), _mm256_permute2f128_ps::<0x20>(s1, s5));
                        _mm256_storeu_ps(q.add(2 * ld), _mm256_permute2f128_ps::<0x20>(s2, s6));
                        _mm256_storeu_ps(q.add(3 * ld), _mm256_permute2f128_ps::<0x20>(s3, s7));
                        _mm256_storeu_ps(q.add(4 * ld), _mm256_permute2f128_ps::<0x31>(s0, s4));
                        _mm256_storeu_ps(q.add(5 * ld), _mm256_permute2f128_ps::<0x31>(s1, s5));
                        _mm256_storeu_ps(q.add(6 * ld), _mm256_permute2f128_ps::<0x31>(s2, s6));
                        _mm256_storeu_ps(q.add(7 * ld), _mm256_permute2f128_ps::<0x31>(s3, s7));
                    }
                }
            }
        }
    }
    scalar(src, stride, (0, rows), (c8, cols), dst, ld);
    scalar(src, stride, (r8, rows), (0, c8), dst, ld);
}
