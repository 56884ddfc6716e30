//! f32 GEMM for hosts with AVX-512: a 12×32 register tile (24 of the 32
//! vector registers accumulate, 2 hold B, A is broadcast from memory).
//!
//! `matrixmultiply`'s AVX-512 tile is 16×16: one B vector per step against
//! 16 broadcasts, so it waits on loads, not on the multiply-add units; a
//! 12×32 tile issues 14 loads for 24 multiply-adds. Narrow products (C
//! with 5 or 9 columns, the NER output layer) use a 12×16 tile on A
//! where it lies rather than packing it.
//!
//! Each element of C is summed exactly as `matrixmultiply` sums it: K in
//! blocks of 256 (its `S_KC`), within a block one fused multiply-add chain
//! from zero in the order of K, and C = block 1, then C + block 2, and so
//! on. The products are therefore bit-identical to `matrixmultiply`'s on
//! every shape and layout (the tests compare them), independent of how C
//! is tiled or split over threads, and the same on hosts without
//! AVX-512, where `matrixmultiply` runs.

use std::arch::x86_64::{
    __m512, _MM_HINT_T0, _mm_prefetch, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps,
};
use std::cell::RefCell;
use std::sync::OnceLock;

use super::transpose::transpose_avx;

/// K per block: `matrixmultiply`'s `S_KC`, which fixes the summation order.
const KC: usize = 256;
/// Rows of the register tile.
const MR: usize = 12;
/// Rows and columns of C a tile covers (its widest).
pub(super) const TILE: (usize, usize) = (MR, 2 * LANES);
/// f32 lanes of a vector.
const LANES: usize = 16;
/// Columns of B packed per pass over C: keeps a packed block of B (KC×NC,
/// 1 MiB) in the L2 cache.
const NC: usize = 1024;
/// A is packed into panels (contiguous, 64-byte aligned) when the columns
/// of C in a pass are more than this: then each panel serves enough tiles
/// to pay for the copy.
const PACK_A_ABOVE: usize = 64;

thread_local! {
    /// This thread's packed B block and A panel, grown, never shrunk.
    static PACKED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Whether this host runs the kernels here.
pub(super) fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
}

/// Row-major C (row stride `rsc`) = A·B, A m×k and B k×n under the given
/// (row, column) strides.
///
/// # Safety
/// `available()` must hold; `a` and `b` must be valid for reads of every
/// element their strides address, `c` for writes of the m×n elements
/// `c[i·rsc + j]`, and C must not overlap A or B.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    (rsa, csa): (isize, isize),
    b: *const f32,
    (rsb, csb): (isize, isize),
    c: *mut f32,
    rsc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            // SAFETY: row i of C, per the contract.
            unsafe { std::ptr::write_bytes(c.add(i * rsc), 0, n) };
        }
        return;
    }
    let a = Strided {
        ptr: a,
        rs: rsa,
        cs: csa,
    };
    let b = Strided {
        ptr: b,
        rs: rsb,
        cs: csb,
    };
    PACKED.with(|packed| match packed.try_borrow_mut() {
        // SAFETY: the caller's contract.
        Ok(mut bufs) => {
            let (bp, ap) = &mut *bufs;
            unsafe { passes(m, k, n, a, b, c, rsc, bp, ap) }
        }
        // Re-entered (a panic unwinding mid-product, say): fresh buffers.
        Err(_) => unsafe { passes(m, k, n, a, b, c, rsc, &mut Vec::new(), &mut Vec::new()) },
    });
}

/// A matrix by its first element and (row, column) strides.
#[derive(Clone, Copy)]
struct Strided {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

impl Strided {
    /// # Safety
    /// (i, j) must be an element of the matrix.
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> *const f32 {
        // SAFETY: the caller's.
        unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }
}

/// The loops around the tile: columns of C in passes of `NC`, K in blocks
/// of `KC` (in order: the summation order), rows in tiles of `MR`,
/// then columns in panels of 32 (or 16 for a last one that narrow).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn passes(
    m: usize,
    k: usize,
    n: usize,
    a: Strided,
    b: Strided,
    c: *mut f32,
    rsc: usize,
    bp: &mut Vec<f32>,
    ap: &mut Vec<f32>,
) {
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        let wide = nc > PACK_A_ABOVE;
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            let panels = panel_widths(nc);
            let b_block = aligned(bp, kc * nc.next_multiple_of(LANES));
            // SAFETY: rows p0..p0+kc and columns j0..j0+nc are in B.
            unsafe { pack_b(b, p0, kc, j0, nc, &panels, b_block) };
            for i0 in (0..m).step_by(MR) {
                let rows = MR.min(m - i0);
                // A is read where it lies when its rows are contiguous (a
                // tile's 12 rows stay in L1 along K), or, for narrow
                // passes, when its columns are and the tile is whole (the
                // view would read past A's end). Otherwise it is packed.
                let by_steps = a.rs == 1 && a.cs > 0 && rows == MR && !wide;
                let panel_a = if a.cs == 1 {
                    let last = rows - 1;
                    // SAFETY: (i0 + i, p0) is in A; rows past the last are
                    // read from the last (and their sums discarded).
                    APanel::Rows(std::array::from_fn(|i| unsafe {
                        a.at(i0 + i.min(last), p0)
                    }))
                } else if by_steps {
                    // SAFETY: (i0, p0) is in A.
                    APanel::Packed(unsafe { a.at(i0, p0) }, a.cs as usize)
                } else {
                    let panel = aligned(ap, kc * MR);
                    // SAFETY: rows i0..i0+rows and columns p0..p0+kc are in A.
                    unsafe { pack_a_panel(a, i0, rows, p0, kc, panel) };
                    APanel::Packed(panel.as_ptr(), MR)
                };
                let mut offset = 0;
                let mut col = j0;
                for &width in &panels {
                    let cols = width.min(j0 + nc - col);
                    let panel_b = b_block[offset..].as_ptr();
                    // SAFETY: the tile's rows and columns are in C.
                    let tile = unsafe { c.add(i0 * rsc + col) };
                    let first = p0 == 0;
                    // SAFETY: the panels hold kc steps of their width.
                    unsafe {
                        match (&panel_a, width) {
                            (APanel::Packed(p, step), 32) => {
                                let view = Contiguous {
                                    ptr: *p,
                                    step: *step,
                                };
                                tile_kernel::<2, _>(kc, view, panel_b, tile, rsc, rows, cols, first)
                            }
                            (APanel::Packed(p, step), _) => {
                                let view = Contiguous {
                                    ptr: *p,
                                    step: *step,
                                };
                                tile_kernel::<1, _>(kc, view, panel_b, tile, rsc, rows, cols, first)
                            }
                            (APanel::Rows(r), 32) => tile_kernel::<2, _>(
                                kc,
                                RowPtrs(*r),
                                panel_b,
                                tile,
                                rsc,
                                rows,
                                cols,
                                first,
                            ),
                            (APanel::Rows(r), _) => tile_kernel::<1, _>(
                                kc,
                                RowPtrs(*r),
                                panel_b,
                                tile,
                                rsc,
                                rows,
                                cols,
                                first,
                            ),
                        }
                    }
                    offset += kc * width;
                    col += width;
                }
            }
        }
    }
}

/// The widths of the panels that cover `nc` columns: 32 each, the last 16
/// when 16 or fewer columns remain.
fn panel_widths(nc: usize) -> Vec<usize> {
    let mut widths = vec![32; nc / 32];
    match nc % 32 {
        0 => {}
        r if r <= LANES => widths.push(LANES),
        _ => widths.push(32),
    }
    widths
}

/// `len` elements of `buf` starting on a 64-byte boundary.
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len + LANES {
        buf.resize(len + LANES, 0.0);
    }
    let skip = buf.as_ptr().align_offset(64).min(LANES);
    &mut buf[skip..skip + len]
}

/// Where the tile's A values lie.
enum APanel {
    /// Step p's MR values contiguous, steps `.1` apart.
    Packed(*const f32, usize),
    /// Each row from its own pointer, steps one element apart.
    Rows([*const f32; MR]),
}

/// A's values for one tile: (row, step) → value.
trait TileA: Copy {
    /// # Safety
    /// (i, p) must be within the panel.
    unsafe fn get(self, i: usize, p: usize) -> f32;
}

/// Step p's values at `ptr + p·step`, row i at offset i.
#[derive(Clone, Copy)]
struct Contiguous {
    ptr: *const f32,
    step: usize,
}

impl TileA for Contiguous {
    #[inline(always)]
    unsafe fn get(self, i: usize, p: usize) -> f32 {
        // SAFETY: the caller's.
        unsafe { *self.ptr.add(p * self.step + i) }
    }
}

/// Row i at `ptrs[i]`, step p at offset p.
#[derive(Clone, Copy)]
struct RowPtrs([*const f32; MR]);

impl TileA for RowPtrs {
    #[inline(always)]
    unsafe fn get(self, i: usize, p: usize) -> f32 {
        // SAFETY: the caller's.
        unsafe { *self.0[i].add(p) }
    }
}

/// One MR × (16·V) tile of C over `kc` steps: C = sum (first block of K)
/// or C + sum, for the tile's first `rows` rows and `cols` columns.
///
/// # Safety
/// `b` holds kc·16·V packed values; `a` covers MR rows and kc steps; the
/// tile's `rows`×`cols` elements of C are writable.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn tile_kernel<const V: usize, A: TileA>(
    kc: usize,
    a: A,
    b: *const f32,
    c: *mut f32,
    rsc: usize,
    rows: usize,
    cols: usize,
    first: bool,
) {
    // C's tile is read (or written) only after the loop: fetch it during.
    for i in 0..rows {
        for v in 0..V {
            // SAFETY: a hint; the address is within row i of the tile.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(c.add(i * rsc + v * LANES) as *const i8) };
        }
    }
    let mut acc = [[_mm512_setzero_ps(); V]; MR];
    for p in 0..kc {
        // SAFETY: step p of the panel and of A, per the contract.
        let bv: [__m512; V] =
            std::array::from_fn(|v| unsafe { _mm512_loadu_ps(b.add((p * V + v) * LANES)) });
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = _mm512_set1_ps(unsafe { a.get(i, p) });
            for (sum, &bv) in row.iter_mut().zip(&bv) {
                *sum = _mm512_fmadd_ps(ai, bv, *sum);
            }
        }
    }
    // Through memory, read back by rows: indexing the accumulators by the
    // (run-time) row count would keep them in memory inside the loop.
    let mut sums = [0.0f32; MR * 32];
    for (i, row) in acc.iter().enumerate() {
        for (v, &sum) in row.iter().enumerate() {
            // SAFETY: vector v of row i is within `sums`.
            unsafe { _mm512_storeu_ps(sums.as_mut_ptr().add(i * 32 + v * LANES), sum) };
        }
    }
    for i in 0..rows {
        for v in 0..V {
            let lanes = cols.saturating_sub(v * LANES).min(LANES);
            if lanes == 0 {
                break;
            }
            // SAFETY: lanes columns of row i of the tile are in C.
            unsafe {
                let sum = _mm512_loadu_ps(sums.as_ptr().add(i * 32 + v * LANES));
                let at = c.add(i * rsc + v * LANES);
                if lanes == LANES {
                    let out = if first {
                        sum
                    } else {
                        _mm512_add_ps(_mm512_loadu_ps(at), sum)
                    };
                    _mm512_storeu_ps(at, out);
                } else {
                    let mask = (1u16 << lanes) - 1;
                    let out = if first {
                        sum
                    } else {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(mask, at), sum)
                    };
                    _mm512_mask_storeu_ps(at, mask, out);
                }
            }
        }
    }
}

/// Packs rows p0..p0+kc of B, columns j0.. in panels of the given widths:
/// each panel step-major, zero past the last column.
///
/// # Safety
/// Those rows and columns j0..j0+nc must be in B; the widths cover nc.
#[target_feature(enable = "avx512f")]
unsafe fn pack_b(
    b: Strided,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    widths: &[usize],
    out: &mut [f32],
) {
    let mut offset = 0;
    let mut col = j0;
    let end = j0 + nc;
    for &width in widths {
        let panel = &mut out[offset..offset + kc * width];
        // Columns of this panel that exist: the rest stay zero.
        let cols = width.min(end - col);
        panel.fill(0.0);
        if b.cs == 1 {
            for p in 0..kc {
                for v in (0..cols).step_by(LANES) {
                    let lanes = (cols - v).min(LANES);
                    let mask = if lanes == LANES {
                        u16::MAX
                    } else {
                        (1u16 << lanes) - 1
                    };
                    // SAFETY: `lanes` elements of row p0 + p from column
                    // col + v are in B (masked lanes are not read).
                    unsafe {
                        let src = b.at(p0 + p, col + v);
                        let dst = panel.as_mut_ptr().add(p * width + v);
                        _mm512_storeu_ps(dst, _mm512_maskz_loadu_ps(mask, src));
                    }
                }
            }
        } else if b.rs == 1 && b.cs > 0 {
            // B given as Bᵀ, row-major: the panel is a transpose of rows
            // col.. of Bᵀ, 8×8 blocks at a time.
            let stride = b.cs as usize;
            // SAFETY: rows col..col+cols, columns p0..p0+kc of Bᵀ are in B.
            let src =
                unsafe { std::slice::from_raw_parts(b.at(p0, col), (cols - 1) * stride + kc) };
            // SAFETY: AVX-512 implies AVX; the panel holds kc rows of width.
            unsafe { transpose_avx(src, cols, kc, stride, panel, width) };
        } else {
            for j in 0..cols {
                for p in 0..kc {
                    // SAFETY: (p0 + p, col + j) is in B.
                    panel[p * width + j] = unsafe { *b.at(p0 + p, col + j) };
                }
            }
        }
        offset += kc * width;
        col += width;
    }
}

/// Packs rows i0..i0+rows, columns p0..p0+kc of A step-major, MR values
/// a step, zero past the last row.
///
/// # Safety
/// Those rows and columns must be in A.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a_panel(a: Strided, i0: usize, rows: usize, p0: usize, kc: usize, out: &mut [f32]) {
    if a.rs == 1 {
        // A step's values are contiguous: one masked copy a step.
        let load = (1u16 << rows) - 1;
        let store = (1u16 << MR) - 1;
        for p in 0..kc {
            // SAFETY: `rows` values from (i0, p0 + p) are in A; MR values
            // from p·MR are in `out`.
            unsafe {
                let v = _mm512_maskz_loadu_ps(load, a.at(i0, p0 + p));
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(p * MR), store, v);
            }
        }
        return;
    }
    if rows < MR {
        out.fill(0.0);
    }
    for i in 0..rows {
        for p in 0..kc {
            // SAFETY: (i0 + i, p0 + p) is in A.
            out[p * MR + i] = unsafe { *a.at(i0 + i, p0 + p) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strides of an m×k matrix stored row-major, transposed, or as every
    /// other element of a wider row-major array.
    fn layouts(rows: usize, cols: usize) -> [(isize, isize, usize); 3] {
        let (r, c) = (rows as isize, cols as isize);
        [
            (c, 1, rows * cols),
            (1, r, rows * cols),
            (2 * c + 3, 2, rows * (2 * cols + 3)),
        ]
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919) % 1013) as f32 * 1e-3 - 0.5)
            .collect()
    }

    /// Bit for bit `matrixmultiply::sgemm`, on every layout of A and B, on
    /// shapes with ragged tiles in each dimension and K over several blocks.
    #[test]
    fn products_equal_matrixmultiply_bit_for_bit() {
        if !available() {
            eprintln!("no AVX-512 on this host: the kernel is not used here");
            return;
        }
        let shapes = [
            (1, 1, 1),
            (12, 256, 32),
            (13, 257, 33),
            (32, 275, 300),
            (1024, 100, 5),
            (100, 1024, 5),
            (25, 600, 17),
            (7, 3, 1100),
            (40, 513, 80),
        ];
        for (m, k, n) in shapes {
            for (rsa, csa, alen) in layouts(m, k) {
                for (rsb, csb, blen) in layouts(k, n) {
                    let a = values(alen, m);
                    let b = values(blen, n + 1);
                    let mut want = vec![0.0f32; m * n];
                    let mut got = vec![f32::NAN; m * n];
                    // SAFETY: the strides address a and b; C is m×n.
                    unsafe {
                        matrixmultiply::sgemm(
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
                            want.as_mut_ptr(),
                            n as isize,
                            1,
                        );
                        sgemm(
                            m,
                            k,
                            n,
                            a.as_ptr(),
                            (rsa, csa),
                            b.as_ptr(),
                            (rsb, csb),
                            got.as_mut_ptr(),
                            n,
                        );
                    }
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(
                        same,
                        "{m}x{k}x{n}, A strides ({rsa}, {csa}), B strides ({rsb}, {csb})"
                    );
                }
            }
        }
    }

    /// C's row stride is honoured (columns outside the product untouched),
    /// K = 0 gives zeros, and NaN and infinities propagate as in any sum.
    #[test]
    fn strided_c_empty_k_and_non_finite_values() {
        if !available() {
            eprintln!("no AVX-512 on this host: the kernel is not used here");
            return;
        }
        let (m, k, n, rsc) = (5, 300, 20, 23);
        let mut a = values(m * k, 1);
        let b = values(k * n, 2);
        a[2 * k + 7] = f32::NAN;
        a[4 * k + 299] = f32::INFINITY;
        let mut c = vec![-7.0f32; m * rsc];
        // SAFETY: a is m×k, b k×n, c holds m rows of rsc.
        unsafe {
            sgemm(
                m,
                k,
                n,
                a.as_ptr(),
                (k as isize, 1),
                b.as_ptr(),
                (n as isize, 1),
                c.as_mut_ptr(),
                rsc,
            )
        };
        for i in 0..m {
            for j in 0..rsc {
                let x = c[i * rsc + j];
                if j >= n {
                    assert_eq!(x, -7.0, "({i}, {j}) is outside C");
                } else if i == 2 {
                    assert!(x.is_nan(), "({i}, {j}) = {x}");
                } else if i == 4 {
                    let sign = b[299 * n + j].signum();
                    assert_eq!(x, sign * f32::INFINITY, "({i}, {j})");
                } else {
                    let want: f64 = (0..k)
                        .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                        .sum();
                    assert!(
                        (x as f64 - want).abs() < 1e-3,
                        "({i}, {j}) = {x}, want {want}"
                    );
                }
            }
        }
        let mut c = vec![1.0f32; 6];
        // SAFETY: k = 0 reads nothing; c is 2×3.
        unsafe {
            sgemm(
                2,
                0,
                3,
                a.as_ptr(),
                (0, 1),
                b.as_ptr(),
                (3, 1),
                c.as_mut_ptr(),
                3,
            )
        };
        assert_eq!(c, vec![0.0; 6]);
    }
}
