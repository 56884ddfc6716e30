//! Matrix products on the CPU, spread over threads by splitting C into
//! blocks of rows (or of columns, when C is wide). f32 on hosts with
//! AVX-512 or AVX2 + FMA runs this crate's kernel (`sgemm`); everything else runs
//! `matrixmultiply` (strided GEMM: any layout goes, though on AVX hosts
//! without AVX-512 an operand its packing would gather element by element
//! is transposed first, see `transpose`).
//!
//! M and N are split by the thread count, K never is: both GEMMs sum each
//! output element over K in blocks of 256, one fused multiply-add chain a
//! block, so an element's additions happen in the same order whichever
//! block of C it falls in, and the product is bit-identical for any
//! thread count (`tests/equivalence.rs` checks it on odd shapes), and
//! between the two GEMMs (`sgemm`'s tests). So large products split
//! their rows in proportion to each thread's recent speed (`balance`),
//! which timing decides, without changing a bit. `matrixmultiply`'s own
//! `threading` feature would do the same split, but it sizes one
//! process-wide pool from `MATMUL_NUM_THREADS`, where a device here
//! chooses its own count. The one cut of K is decided by the shape alone:
//! a product of at most 32 rows with B stored by rows sums two halves of
//! K and adds them (`k_cut`), on one thread as on several.
//!
//! A matmul's epilogue (`Finish`) runs on rows of C as the kernel
//! finishes them, on the thread that computed them, while they are in
//! cache; where C is split by columns, a row is finished by several
//! threads, so the epilogue runs after the product instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::elementwise::scaled_sub;
use super::par::{self, PAR_MIN, Pool, SendPtr};
use super::transpose::{Operand, Stage};
use crate::ir::Float;

/// Multiply-adds below which a product stays on the calling thread. With
/// helpers that poll for work (`par::POLL`), the training step's products
/// (B=32: 32×275×300, 2.6 M) gain from the split: 0.137 against 0.179 ms
/// a step at 2 threads; while a helper had to be woken for each, they
/// lost (0.55 against 0.38 ms with the split from 1 M, on a loaded host).
const PAR_MIN_MACS: usize = 1 << 20;

/// Multiply-adds from which a product split by rows is split in
/// proportion to each thread's recent speed (`by_speed`): about a
/// millisecond a thread, long enough that timing a block says something
/// of its core.
const BALANCE_MIN_MACS: usize = 1 << 26;

/// A float type with a GEMM.
pub trait Gemm: Float {
    /// Runs the crate's own kernel for this type and host, if it has one
    /// (`sgemm`), under `gemm_strided`'s contract; false where it has none.
    ///
    /// # Safety
    /// As `gemm_strided`.
    #[doc(hidden)]
    unsafe fn own_kernel(
        _mkn: (usize, usize, usize),
        _a: Operand<'_, Self>,
        _b: Operand<'_, Self>,
        _c: *mut Self,
        _rsc: usize,
        _rows_done: &mut dyn FnMut(usize, usize),
        _update: Option<Update<Self>>,
    ) -> bool {
        false
    }

    /// Rows and columns of C that the kernel computes at a time.
    fn tile() -> (usize, usize) {
        // `matrixmultiply`'s kernels: 8×8 (AVX, f32), 8×4 or 4×8 (f64).
        (8, 8)
    }

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
    ) {
        if c.len() < m * n {
            return;
        }
        // SAFETY: C holds m×n elements, row-major.
        unsafe { Self::gemm_strided(m, k, n, a, rsa, csa, b, rsb, csb, c.as_mut_ptr(), n) }
    }

    /// As `gemm`, writing C through `c` with row stride `rsc`.
    ///
    /// # Safety
    /// `c` must be valid for writes of the m×n elements `c[i·rsc + j]`,
    /// and `a`, `b` must hold m×k and k×n elements under their strides.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_strided(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        rsa: isize,
        csa: isize,
        b: &[Self],
        rsb: isize,
        csb: isize,
        c: *mut Self,
        rsc: usize,
    ) {
        // SAFETY: the caller's.
        unsafe {
            Self::gemm_rows_done(
                m,
                k,
                n,
                a,
                rsa,
                csa,
                b,
                rsb,
                csb,
                c,
                rsc,
                &mut |_, _| {},
                None,
            )
        }
    }

    /// As `gemm_strided`, calling `rows_done(first, rows)` on this thread
    /// once those rows of C are final: tile by tile with the crate's own
    /// kernel (while they are in cache), once for all of C otherwise.
    /// Every row is reported once. With `update = Some((from, scale))`, a
    /// row reported done holds `from − C·scale` (`from` laid out as C; the
    /// multiply, then the subtraction, each rounded).
    ///
    /// # Safety
    /// As `gemm_strided`; `from` must be valid for reads of the elements
    /// of C's layout and must not overlap C.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_rows_done(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        rsa: isize,
        csa: isize,
        b: &[Self],
        rsb: isize,
        csb: isize,
        c: *mut Self,
        rsc: usize,
        rows_done: &mut dyn FnMut(usize, usize),
        update: Option<Update<Self>>,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        // SAFETY: the caller's contract, which is `own_kernel`'s.
        if unsafe {
            Self::own_kernel(
                (m, k, n),
                (a, (rsa, csa)),
                (b, (rsb, csb)),
                c,
                rsc,
                rows_done,
                update,
            )
        } {
            return;
        }
        let (one, zero) = (Self::from_f64(1.0), Self::from_f64(0.0));
        let (ap, bp, rs) = (a.as_ptr(), b.as_ptr(), rsc as isize);
        // SAFETY: the caller's contract; with k = 0 the GEMM only writes
        // C ← 0·C, which for beta 0 stores zeros.
        unsafe { Self::MATRIXMULTIPLY(m, k, n, one, ap, rsa, csa, bp, rsb, csb, zero, c, rs, 1) };
        if let Some((from, scale)) = update {
            for i in 0..m {
                // SAFETY: row i of C and of `from`, per the contract.
                let (row, from) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(c.add(i * rsc), n),
                        std::slice::from_raw_parts(from.add(i * rsc), n),
                    )
                };
                scaled_sub(from, scale, row);
            }
        }
        rows_done(0, m);
    }

    /// `matrixmultiply`'s GEMM for this type: C = α·A·B + β·C, every
    /// matrix by its (row, column) strides.
    #[doc(hidden)]
    const MATRIXMULTIPLY: StridedGemm<Self>;
}

/// The signature of `matrixmultiply::sgemm` and `dgemm`: (m, k, n, α, A,
/// A's strides, B, B's strides, β, C, C's strides).
pub type StridedGemm<T> = unsafe fn(
    usize,
    usize,
    usize,
    T,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    *mut T,
    isize,
    isize,
);

impl Gemm for f32 {
    const MATRIXMULTIPLY: StridedGemm<f32> = matrixmultiply::sgemm;

    #[cfg(target_arch = "x86_64")]
    fn tile() -> (usize, usize) {
        super::sgemm::Isa::chosen().map_or((8, 8), super::sgemm::Isa::tile)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn own_kernel(
        (m, k, n): (usize, usize, usize),
        (a, sa): Operand<'_, f32>,
        (b, sb): Operand<'_, f32>,
        c: *mut f32,
        rsc: usize,
        rows_done: &mut dyn FnMut(usize, usize),
        update: Option<Update<f32>>,
    ) -> bool {
        let Some(isa) = super::sgemm::Isa::chosen() else {
            return false;
        };
        let (a, b) = (a.as_ptr(), b.as_ptr());
        // SAFETY: `chosen` returns only supported ISAs; the rest is the
        // caller's contract.
        unsafe { super::sgemm::sgemm(isa, m, k, n, a, sa, b, sb, c, rsc, rows_done, update) };
        true
    }
}

impl Gemm for f64 {
    const MATRIXMULTIPLY: StridedGemm<f64> = matrixmultiply::dgemm;
}

/// Called with a flat range of C (its first element's index in row-major
/// order, and its elements) once they hold their final values, on the
/// thread that computed them: a fused epilogue.
pub(crate) type Finish<'a, T> = &'a (dyn Fn(usize, &mut [T]) + Sync);

/// C ← from − C·scale: `from` (laid out as C) and `scale`.
pub type Update<T> = (*const T, T);

/// What becomes of C's elements once final.
#[derive(Clone, Copy)]
pub(crate) enum Epilogue<'a, T> {
    /// Any element-wise epilogue, run on rows of C as they become final.
    Rows(Finish<'a, T>),
    /// C ← from − C·scale, `from` m×n row-major: an SGD step fused into
    /// its gradient's product. The crate's own kernel applies it to each
    /// tile as soon as it is stored (still in L1), `from`'s tile fetched
    /// while the tile's sums run. As an element-wise epilogue on rows, the
    /// NER training step's W₁ gradient and update (275×32×300) took 77–103
    /// µs against 57–70 µs for the product alone; this way 66–86 µs.
    ScaledSub(&'a [T], T),
}

impl<T: Float> Epilogue<'_, T> {
    /// Applies the epilogue to `out`, the final elements of C from flat
    /// index `start` on.
    fn apply(&self, start: usize, out: &mut [T]) {
        match *self {
            Epilogue::Rows(finish) => finish(start, out),
            Epilogue::ScaledSub(from, scale) => scaled_sub(&from[start..], scale, out),
        }
    }
}

/// `C = A·B` (row-major C, m×n) on the pool's threads, one block of rows
/// (or columns, when n > m) of C per thread, or one half of K for the
/// products `k_cut` names, with operands that packing
/// would gather transposed first (`transpose`). `epilogue` is applied to
/// every element of C once, as rows of a block become final.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: Gemm + Stage>(
    pool: &Pool,
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    sa: (isize, isize),
    b: &[T],
    sb: (isize, isize),
    c: &mut [T],
    epilogue: Option<Epilogue<'_, T>>,
) {
    if c.len() < m * n {
        return;
    }
    if let Some(Epilogue::ScaledSub(from, _)) = epilogue
        && from.len() < m * n
    {
        return;
    }
    // Decided on the operands as given, before staging may transpose
    // them, so that every host cuts the same products.
    let k_cut = k_cut(m, k, n, sb);
    T::staged(pool, (m, k, n), (a, sa), (b, sb), |a, b| {
        spread(pool, (m, k, n), a, b, c, epilogue, k_cut)
    });
}

/// The product on the pool's threads: cut along K at `k_cut`, or else
/// split by rows or columns.
fn spread<T: Gemm>(
    pool: &Pool,
    (m, k, n): (usize, usize, usize),
    (a, sa): Operand<'_, T>,
    (b, sb): Operand<'_, T>,
    c: &mut [T],
    epilogue: Option<Epilogue<'_, T>>,
    k_cut: Option<usize>,
) {
    match k_cut {
        Some(k0) => split_k(pool, (m, k, n), (a, sa), (b, sb), c, epilogue, k0),
        None => split(pool, m, k, n, a, sa, b, sb, c, epilogue),
    }
}

/// Products of at most this many rows of C whose B is stored by rows are
/// summed in two halves of K (`split_k`).
///
/// The case is a layer's forward pass `x·W` at a small batch. Its
/// weight's gradient `xᵀ·δ` is tall and split by rows, so with an SGD
/// step fused into it each thread writes a block of W's rows; cut by
/// columns, the next forward pass reads about half of each thread's W
/// from the other core (~8 ns a 64-byte line here). Cut along K at the
/// same place, each thread reads the rows it wrote. The window model's
/// training step at 2 threads, in-process alternation: 1.07–1.13× as
/// fast with one 32×275×300 first layer, 1.08–1.18× with the `train`
/// model's 32×250×300 + 32×25×300 (word and side inputs). Alone, with W
/// never rewritten, the cut
/// costs its extra pass: 32×275×300 0.93×, 48×300×100 0.97×, 64×512×512
/// 0.97×, 16×1024×1024 1.05× against the column split, hence the bound.
const K_CUT_MAX_ROWS: usize = 32;

/// K below which a product is never cut in two.
const K_CUT_MIN_K: usize = 128;

/// Where K is cut in two (`split_k`) for this product, if it is: few rows
/// of C, a long K, B stored by rows, and enough work to spread over
/// threads. Only the shape and B's layout decide it, never the thread
/// count or the host, so every thread count and host sums the same way.
/// The cut: half of K rounded up to 16, which is also where a 2-thread
/// row split of a gradient with K rows falls when the kernel's row tile
/// divides 48 (12 on AVX-512: 275 → 144).
fn k_cut(m: usize, k: usize, n: usize, (rsb, csb): (isize, isize)) -> Option<usize> {
    let cut = m <= K_CUT_MAX_ROWS
        && csb == 1
        && rsb != 1
        && k >= K_CUT_MIN_K
        && m * n * k >= PAR_MIN_MACS;
    cut.then(|| k.div_ceil(2).next_multiple_of(16))
}

thread_local! {
    /// `split_k`'s second partial product, kept between calls.
    static PARTIAL: std::cell::Cell<Vec<u64>> = const { std::cell::Cell::new(Vec::new()) };
}

/// C = A[:, ..k0]·B[..k0, :] + A[:, k0..]·B[k0.., :]: each partial
/// product on a thread of its own (split by columns too where there are
/// more than two threads), then their sum and the epilogue in pieces.
/// At one thread the same two products run one after the other, so the
/// sums are the same bits at any thread count.
fn split_k<T: Gemm>(
    pool: &Pool,
    (m, k, n): (usize, usize, usize),
    (a, (rsa, csa)): Operand<'_, T>,
    (b, (rsb, csb)): Operand<'_, T>,
    c: &mut [T],
    epilogue: Option<Epilogue<'_, T>>,
    k0: usize,
) {
    let mut words = PARTIAL.take();
    let len = (m * n * std::mem::size_of::<T>()).div_ceil(8);
    if words.len() < len {
        words.resize(len, 0);
    }
    // SAFETY: `words` holds at least m·n elements of T (a float type of 4
    // or 8 bytes, aligned at most as u64), all initialized.
    let partial = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<T>(), m * n) };
    let (cp, pp) = (SendPtr(c.as_mut_ptr()), SendPtr(partial.as_mut_ptr()));
    let blocks = (pool.threads() / 2).max(1);
    let width = n.div_ceil(blocks).next_multiple_of(T::tile().1);
    let blocks = n.div_ceil(width);
    pool.tasks(2 * blocks, |t| {
        let (half, block) = (t % 2, t / 2);
        let (lo, hi) = (block * width, ((block + 1) * width).min(n));
        let ((p0, p1), out) = if half == 0 {
            ((0, k0), cp)
        } else {
            ((k0, k), pp)
        };
        let a = &a[(p0 as isize * csa) as usize..];
        let b = &b[(p0 as isize * rsb + lo as isize * csb) as usize..];
        // SAFETY: columns lo..hi of C or of the partial product, written
        // by this task alone, through the row stride n.
        unsafe { T::gemm_strided(m, p1 - p0, hi - lo, a, rsa, csa, b, rsb, csb, out.at(lo), n) };
    });
    let partial = &*partial;
    pool.pieces(&mut c[..m * n], PAR_MIN, |start, out| {
        for (o, &p) in out.iter_mut().zip(&partial[start..]) {
            *o = *o + p;
        }
        if let Some(e) = epilogue {
            e.apply(start, out);
        }
    });
    PARTIAL.set(words);
}

#[allow(clippy::too_many_arguments)]
fn split<T: Gemm>(
    pool: &Pool,
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    (rsa, csa): (isize, isize),
    b: &[T],
    (rsb, csb): (isize, isize),
    c: &mut [T],
    epilogue: Option<Epilogue<'_, T>>,
) {
    let threads = pool.threads();
    let cp = SendPtr(c.as_mut_ptr());
    // Rows `first..first + rows` of C are final (an update is applied by
    // the GEMM itself, `Rows::update`).
    let done = |first: usize, rows: usize| {
        if let Some(Epilogue::Rows(finish)) = epilogue {
            // SAFETY: whole rows of C, final, and written by no other task.
            finish(first * n, unsafe {
                std::slice::from_raw_parts_mut(cp.at(first * n), rows * n)
            });
        }
    };
    let rows = Rows {
        k,
        n,
        a: (a, (rsa, csa)),
        b: (b, (rsb, csb)),
        c: cp,
        update: match epilogue {
            Some(Epilogue::ScaledSub(from, scale)) => {
                Some((SendPtr(from.as_ptr().cast_mut()), scale))
            }
            _ => None,
        },
    };
    if threads == 1 || m * n * k < PAR_MIN_MACS {
        // SAFETY: C holds m×n elements, row-major.
        unsafe { rows.block((0, m), &done) };
        return;
    }
    // Blocks aligned to the kernel's register tile, so that only the last
    // block has a ragged edge.
    let (tile_rows, tile_cols) = T::tile();
    // By rows where C is tall, and also where an epilogue would otherwise
    // be called row by row on short runs, as long as each thread still
    // gets several tiles of rows.
    let by_rows = m >= n || (epilogue.is_some() && m >= 4 * threads * tile_rows);
    if by_rows && m * n * k >= BALANCE_MIN_MACS {
        // SAFETY: as below, for the rows of each block.
        unsafe { by_speed(pool, m, &rows, &done) };
        return;
    }
    let len = if by_rows { m } else { n };
    let block = len
        .div_ceil(threads)
        .next_multiple_of(if by_rows { tile_rows } else { tile_cols });
    let tasks = len.div_ceil(block);
    pool.tasks(tasks, |t| {
        let lo = t * block;
        let hi = (lo + block).min(len);
        if by_rows {
            // SAFETY: rows lo..hi of C, disjoint from the other tasks'.
            unsafe { rows.block((lo, hi), &done) };
        } else {
            let b = &b[(lo as isize * csb) as usize..];
            // SAFETY: columns lo..hi of C, disjoint from the other tasks';
            // the GEMM writes only those, through C's row stride n.
            unsafe { T::gemm_strided(m, k, hi - lo, a, rsa, csa, b, rsb, csb, cp.at(lo), n) };
        }
    });
    if by_rows {
        return;
    }
    // A row's columns lie in every task: the epilogue runs once all are
    // done, in pieces as an element-wise kernel would.
    if let Some(e) = epilogue {
        pool.pieces(&mut c[..m * n], PAR_MIN, |start, out| e.apply(start, out));
    }
}

/// C split into one block of rows per thread, each block in proportion to
/// its thread's recent speed (`balance`): a thread takes its own block
/// when it comes, or else the first one left.
///
/// # Safety
/// As `Rows::block`, for all m rows.
unsafe fn by_speed<T: Gemm>(
    pool: &Pool,
    m: usize,
    rows: &Rows<'_, T>,
    done: &(dyn Fn(usize, usize) + Sync),
) {
    let threads = pool.threads();
    let bounds = pool.speeds().bounds(m, T::tile().0);
    let taken: Vec<AtomicBool> = (0..threads).map(|_| AtomicBool::new(false)).collect();
    let runs = Mutex::new(Vec::with_capacity(threads));
    pool.tasks(threads, |_| {
        let me = par::slot().min(threads - 1);
        let take = |b: usize| !taken[b].swap(true, Ordering::Relaxed);
        let Some(block) = Some(me)
            .filter(|&b| take(b))
            .or_else(|| (0..threads).find(|&b| take(b)))
        else {
            return;
        };
        let (lo, hi) = (bounds[block], bounds[block + 1]);
        let start = Instant::now();
        // SAFETY: rows lo..hi of C, disjoint from the other blocks'.
        unsafe { rows.block((lo, hi), done) };
        let run = (me, hi - lo, start.elapsed());
        runs.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(run);
    });
    pool.speeds()
        .learn(&runs.into_inner().unwrap_or_else(PoisonError::into_inner));
}

/// One product split by rows: C (row-major, n columns, from `c`) = A·B,
/// with an update (`from` laid out as C) applied as rows become final.
struct Rows<'a, T> {
    k: usize,
    n: usize,
    a: Operand<'a, T>,
    b: Operand<'a, T>,
    c: SendPtr<T>,
    update: Option<(SendPtr<T>, T)>,
}

impl<T: Gemm> Rows<'_, T> {
    /// Rows `lo..hi` of C, calling `done` with rows' indices in C as they
    /// become final.
    ///
    /// # Safety
    /// As `Gemm::gemm_strided` for those rows, which no other thread
    /// writes meanwhile; `from` holds C's elements.
    unsafe fn block(&self, (lo, hi): (usize, usize), done: &(dyn Fn(usize, usize) + Sync)) {
        if hi <= lo {
            return;
        }
        let (k, n) = (self.k, self.n);
        let (a, (rsa, csa)) = self.a;
        let (b, (rsb, csb)) = self.b;
        let a = &a[(lo as isize * rsa) as usize..];
        // SAFETY: the caller's.
        unsafe {
            let update = self
                .update
                .map(|(from, scale)| (from.at(lo * n).cast_const(), scale));
            T::gemm_rows_done(
                hi - lo,
                k,
                n,
                a,
                rsa,
                csa,
                b,
                rsb,
                csb,
                self.c.at(lo * n),
                n,
                &mut |f, r| done(lo + f, r),
                update,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::transpose::transposed_first;
    use super::*;

    /// Staged (transposed before packing) and split products equal one
    /// plain `matrixmultiply` call bit for bit, for every operand layout
    /// and thread count: what makes results independent of both.
    #[test]
    fn staged_and_split_products_equal_the_plain_one() {
        let pools: Vec<Pool> = (1..=3).map(|t| Pool::new(t).unwrap()).collect();
        // Threads taught unequal speeds, so that large products split
        // unevenly (`by_speed`) from the first call on.
        for pool in &pools {
            for _ in 0..4 {
                let runs: Vec<_> = (0..pool.threads())
                    .map(|s| (s, 100, std::time::Duration::from_millis(1 + 2 * s as u64)))
                    .collect();
                pool.speeds().learn(&runs);
            }
        }
        // An epilogue or update applied twice, or missed, changes the
        // result.
        let epilogue = |x: f32| x * 2.0 + 1.0;
        let finish = |_: usize, out: &mut [f32]| out.iter_mut().for_each(|x| *x = epilogue(*x));
        let mut cuts = 0;
        for (m, k, n) in [
            (70, 300, 275),
            (300, 33, 129),
            (1, 4100, 3),
            (129, 257, 9),
            (275, 32, 300),
            (32, 275, 300),
            (20, 1100, 70),
            (520, 260, 520),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919) % 1013) as f32 * 1e-3 - 0.5)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104_729) % 997) as f32 * 1e-3 - 0.5)
                .collect();
            let (mi, ki, ni) = (m as isize, k as isize, n as isize);
            // Row-major, and stored transposed, for each operand.
            for sa in [(ki, 1), (1, mi)] {
                for sb in [(ni, 1), (1, ki)] {
                    let cut = k_cut(m, k, n, sb);
                    cuts += usize::from(cut.is_some());
                    let want = reference(m, k, n, (&a, sa), (&b, sb), cut);
                    let finished: Vec<f32> = want.iter().map(|&x| epilogue(x)).collect();
                    let from: Vec<f32> = (0..m * n).map(|i| (i % 89) as f32 * 0.25).collect();
                    let stepped: Vec<f32> = want
                        .iter()
                        .zip(&from)
                        .map(|(&x, &f)| f - x * 0.37)
                        .collect();
                    for pool in &pools {
                        let mut got = vec![f32::NAN; m * n];
                        gemm(pool, m, k, n, &a, sa, &b, sb, &mut got, None);
                        let mut with_epilogue = vec![f32::NAN; m * n];
                        gemm(
                            pool,
                            m,
                            k,
                            n,
                            &a,
                            sa,
                            &b,
                            sb,
                            &mut with_epilogue,
                            Some(Epilogue::Rows(&finish)),
                        );
                        let mut updated = vec![f32::NAN; m * n];
                        let update = Epilogue::ScaledSub(&from, 0.37);
                        gemm(pool, m, k, n, &a, sa, &b, sb, &mut updated, Some(update));
                        let mut staged = vec![f32::NAN; m * n];
                        // Staged on every host with AVX, whether or not
                        // `gemm` chooses to stage on this one.
                        transposed_first(pool, (m, k, n), (&a, sa), (&b, sb), |a, b| {
                            spread(pool, (m, k, n), a, b, &mut staged, None, cut)
                        });
                        for (what, got, want) in [
                            ("gemm", &got, &want),
                            ("staged", &staged, &want),
                            ("gemm with an epilogue", &with_epilogue, &finished),
                            ("gemm with an update", &updated, &stepped),
                        ] {
                            let same = got
                                .iter()
                                .zip(want)
                                .all(|(x, y)| x.to_bits() == y.to_bits());
                            assert!(
                                same,
                                "{what} {m}x{k}x{n} {sa:?} {sb:?} at {} threads",
                                pool.threads()
                            );
                        }
                    }
                }
            }
        }
        // 32×275×300 and 20×1100×70 with B by rows, for both layouts
        // of A: K cut in two.
        assert_eq!(cuts, 4);
    }

    /// The product as one plain `matrixmultiply` call, or where K is cut,
    /// as two (one per half of K) and their sum.
    fn reference(
        m: usize,
        k: usize,
        n: usize,
        (a, (rsa, csa)): Operand<'_, f32>,
        (b, (rsb, csb)): Operand<'_, f32>,
        cut: Option<usize>,
    ) -> Vec<f32> {
        let mut want = vec![0.0f32; m * n];
        let Some(k0) = cut else {
            f32::gemm(m, k, n, a, rsa, csa, b, rsb, csb, &mut want);
            return want;
        };
        let mut second = vec![0.0f32; m * n];
        f32::gemm(m, k0, n, a, rsa, csa, b, rsb, csb, &mut want);
        let (a, b) = (&a[k0 * csa as usize..], &b[k0 * rsb as usize..]);
        f32::gemm(m, k - k0, n, a, rsa, csa, b, rsb, csb, &mut second);
        want.iter_mut().zip(&second).for_each(|(x, y)| *x += y);
        want
    }
}
