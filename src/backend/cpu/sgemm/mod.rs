//! f32 GEMM for x86 hosts with AVX-512 (a 12×32 register tile: 24 of the
//! 32 vector registers accumulate, 2 hold B, A is broadcast from memory)
//! or AVX2 + FMA (a 6×16 tile: 12 of 16 registers).
//!
//! `matrixmultiply`'s tiles are 16×16 (AVX-512) and 8×8 (AVX2): one B
//! vector a step against 16 or 8 broadcasts, so they wait on loads, not
//! on the multiply-add units; a 12×32 tile issues 14 loads for 24
//! multiply-adds. Narrow products (C with 5 or 9 columns, the NER output
//! layer) run a one-vector-wide tile, on A where it lies rather than
//! packed. Products with few rows (the NER training step's, 32 windows a
//! step) compute A·Bᵀ as (B·Aᵀ)ᵀ through a buffer, so that only the small
//! operand is transposed (a fused multiply-add is symmetric in its
//! factors: the sums are the same), where K is long enough; A·B too, as
//! (Bᵀ·Aᵀ)ᵀ, where their rows fill whole vectors and K is long, else they
//! read row-major B where it lies. A last tile of at most 8 rows (4 on
//! AVX2) runs a kernel that short rather than computing rows it discards;
//! whole tiles are stored straight from the registers. Row-major B whose
//! rows lie far apart is packed row by row, as a stream the prefetcher
//! follows.
//!
//! `sgemm` reports rows of C as they become final, tile by tile, so that
//! a matmul's epilogue runs on them while they are still in cache.
//!
//! Each element of C is summed exactly as `matrixmultiply` sums it: K in
//! blocks of 256 (its `S_KC`), within a block one fused multiply-add chain
//! from zero in the order of K, and C = block 1, then C + block 2, and so
//! on. The products are therefore bit-identical to `matrixmultiply`'s on
//! every shape and layout (the tests compare them, for each ISA the host
//! has), independent of how C is tiled or split over threads, and the
//! same on hosts where `matrixmultiply` runs instead.

mod simd;

use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
use std::cell::RefCell;
use std::sync::OnceLock;

use simd::{Avx2, Avx512, Simd};

use super::blocks::transpose_avx;
use super::elementwise::scaled_sub;

/// K per block: `matrixmultiply`'s `S_KC`, which fixes the summation order.
const KC: usize = 256;
/// Products with at most this many rows (4 tiles) read row-major B where
/// it lies (unless swapped: `SWAP_AB_ROWS`), and compute A·Bᵀ as (B·Aᵀ)ᵀ
/// (from `SWAP_ABT_MIN_K`): each element of B then serves at most 4
/// tiles, too few to pay for packing or transposing all of B. On the NER
/// training step's products that made 32×275×300 1.22× faster (B where it
/// lies, against packed B) and 32×300×275 1.28× (the transposed product),
/// on one thread, in-process A/B; reading B in place at 275×32×300 and
/// 1024×250×100 cost 8 % and 4 %, hence the bound.
const DIRECT_B_ROWS: usize = 48;
/// A·B with row-major B and at most `DIRECT_B_ROWS` rows is computed as
/// (Bᵀ·Aᵀ)ᵀ too, when its rows are a multiple of this and K is at least
/// `SWAP_AB_MIN_K`. The swapped product keeps its packed operand (Aᵀ, K×M)
/// in L1 and streams B once, where B read in place streams once per tile
/// of rows: 32×275×300 and 32×250×300 ran 1.16× and 1.14× faster, 16×275×300
/// 1.35×, 48×275×300 1.12×, 32×1024×1024 1.30× (AVX2: 1.03–1.06×). Rows that
/// leave a ragged panel in the swapped product (12, 20, 24, 40) ran
/// 0.6–0.9× as fast, and K = 25 0.8× (the transposes dominate). In the
/// NER training step (B = 32) the first layer's product with its epilogue
/// ran 1.09–1.12× faster and the step 1.02× on one thread; at 2 threads
/// the step did not change (there its products are slowed by cache
/// lines that move between the cores).
const SWAP_AB_ROWS: usize = 16;
const SWAP_AB_MIN_K: usize = 128;
/// A·Bᵀ with at most `DIRECT_B_ROWS` rows is computed as (B·Aᵀ)ᵀ when K is
/// at least this; with K shorter, the transposes cost more than they save.
/// One thread, in-process alternation (the whole `matmul`, 2 µs of which
/// are the call): 32×9×300 ran 1.41× as fast unswapped (the NER step's
/// δ₂·W₂ᵀ), 32×16×300 1.34×, 32×25×300 and 32×32×300 1.12×, the same with
/// N = 100 1.00–1.10×; from K = 50 the swap won (0.87–0.99 of the time).
const SWAP_ABT_MIN_K: usize = 48;
/// Columns of B packed per pass over C: keeps a packed block of B (KC×NC,
/// 1 MiB) in the L2 cache.
const NC: usize = 1024;
/// A is packed into panels (contiguous, 64-byte aligned) when the columns
/// of C in a pass are more than this: then each panel serves enough tiles
/// to pay for the copy.
const PACK_A_ABOVE: usize = 64;
/// Row-major A is packed too, in wide passes, when its rows lie this many
/// elements (2 KiB) apart or more: a tile's rows then each sit in a page
/// (or an L1 set) of their own. Packing made 1024³ 15–19 % faster, other
/// products with K ≥ 1000 4–14 % and 512³ 6 % (a few others with K ≥ 512
/// did not change); on the NER model's products (K = 100 to 300) it cost
/// 2–6 %.
const PACK_A_ROWS_APART: isize = 512;
/// Row-major B is packed row by row, rather than panel by panel, when its
/// rows lie this many elements (2 KiB) apart or more. Panel by panel, each
/// row's two vectors are then a page from the next row's, and the
/// prefetcher does not follow: packing a 256×1024 block of a 1024×1024 B
/// took 1.9× as long from memory (1.1× from cache). Rows closer together
/// pack faster panel by panel (1.5× on 32×300 and 256×100 blocks, in
/// cache), where row by row stores to panels 4 KiB apart in turn.
const PACK_B_BY_ROWS_APART: isize = 512;
/// The largest tile's elements (12×32), for the buffer its sums pass
/// through.
const MAX_TILE: usize = 12 * 32;

thread_local! {
    /// This thread's packed B block and A panel, grown, never shrunk.
    static PACKED: RefCell<(Vec<f32>, Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// The vector ISAs with a kernel here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    Avx512,
    Avx2,
}

impl Isa {
    /// The ISA whose kernel runs: the widest this host has, unless
    /// `DELTAGRAD_CPU_GEMM` names another (`avx2`, say, to measure that
    /// kernel on an AVX-512 host) or `matrixmultiply`; `None` for
    /// `matrixmultiply`.
    pub(super) fn chosen() -> Option<Isa> {
        static CHOSEN: OnceLock<Option<Isa>> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let widest = [Isa::Avx512, Isa::Avx2]
                .into_iter()
                .find(|isa| isa.supported());
            let Ok(asked) = std::env::var("DELTAGRAD_CPU_GEMM") else {
                return widest;
            };
            let pick = match asked.trim() {
                "" | "auto" => return widest,
                "matrixmultiply" => return None,
                "avx512" => Isa::Avx512,
                "avx2" => Isa::Avx2,
                _ => {
                    eprintln!(
                        "deltagrad: warning: DELTAGRAD_CPU_GEMM={asked:?} is none of auto, \
                         avx512, avx2, matrixmultiply; using {}",
                        Isa::name(widest)
                    );
                    return widest;
                }
            };
            if pick.supported() {
                return Some(pick);
            }
            eprintln!(
                "deltagrad: warning: DELTAGRAD_CPU_GEMM={asked:?}: this CPU lacks it; using {}",
                Isa::name(widest)
            );
            widest
        })
    }

    /// The kernel's name, as `DELTAGRAD_CPU_GEMM` spells it.
    pub(super) fn name(isa: Option<Isa>) -> &'static str {
        match isa {
            Some(Isa::Avx512) => "avx512",
            Some(Isa::Avx2) => "avx2",
            None => "matrixmultiply",
        }
    }

    /// Whether this host runs `self`'s kernel.
    pub(super) fn supported(self) -> bool {
        match self {
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
        }
    }

    /// Rows and columns of C the widest tile covers.
    pub(super) fn tile(self) -> (usize, usize) {
        match self {
            Isa::Avx512 => (12, 32),
            Isa::Avx2 => (6, 16),
        }
    }
}

/// Row-major C (row stride `rsc`) = A·B, A m×k and B k×n under the given
/// (row, column) strides. `rows_done(first, rows)` is called, on this
/// thread, as soon as those rows of C hold their final values (a tile's
/// rows, while they are still in cache: a fused epilogue runs there), and
/// once for every row. With `update = Some((from, scale))` a row reported
/// done holds `from − C·scale` instead (an SGD step fused into its
/// gradient's product: the multiply, then the subtraction, each rounded,
/// as the element-wise kernels compute it), `from` laid out as C is; each
/// tile gets it as soon as it is stored, while it is in L1, with `from`'s
/// lines fetched while the tile's sums run.
///
/// # Safety
/// `isa.supported()` must hold; `a` and `b` must be valid for reads of
/// every element their strides address, `c` for writes of the m×n
/// elements `c[i·rsc + j]`, `from` (if given) for reads of the same
/// elements, and C must not overlap A, B or `from`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn sgemm(
    isa: Isa,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    (rsa, csa): (isize, isize),
    b: *const f32,
    (rsb, csb): (isize, isize),
    c: *mut f32,
    rsc: usize,
    rows_done: &mut dyn FnMut(usize, usize),
    update: Option<(*const f32, f32)>,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            // SAFETY: row i of C, per the contract.
            unsafe { std::ptr::write_bytes(c.add(i * rsc), 0, n) };
        }
        // SAFETY: C's and `from`'s m rows, per the contract.
        unsafe { update_rows(c, rsc, (0, m), n, update) };
        rows_done(0, m);
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
    let product = Product {
        m,
        k,
        n,
        a,
        b,
        c,
        rsc,
        from: update,
    };
    let swap = a.cs == 1
        && a.rs > 0
        && m <= DIRECT_B_ROWS
        && ((b.rs == 1 && b.cs > 0 && k >= SWAP_ABT_MIN_K)
            || (b.cs == 1 && b.rs > 0 && m.is_multiple_of(SWAP_AB_ROWS) && k >= SWAP_AB_MIN_K));
    PACKED.with(|packed| {
        let mut fresh = (Vec::new(), Vec::new(), Vec::new());
        // Re-entered (a panic unwinding mid-product, say): fresh buffers.
        let mut held = packed.try_borrow_mut();
        let (bp, ap, cp) = match held.as_deref_mut() {
            Ok(bufs) => bufs,
            Err(_) => &mut fresh,
        };
        let run = |product: &Product,
                   bp: &mut Vec<f32>,
                   ap: &mut Vec<f32>,
                   done: &mut dyn FnMut(usize, usize)| {
            // SAFETY: the ISA is supported; the rest is the caller's contract.
            unsafe {
                match isa {
                    Isa::Avx512 => passes_avx512(product, bp, ap, done),
                    Isa::Avx2 => passes_avx2(product, bp, ap, done),
                }
            }
        };
        if swap {
            let ct = aligned(cp, n * m);
            let swapped = Product {
                m: n,
                k,
                n: m,
                a: Strided {
                    ptr: b.ptr,
                    rs: b.cs,
                    cs: b.rs,
                },
                b: Strided {
                    ptr: a.ptr,
                    rs: a.cs,
                    cs: a.rs,
                },
                c: ct.as_mut_ptr(),
                rsc: m,
                from: None,
            };
            run(&swapped, bp, ap, &mut |_, _| {});
            // SAFETY: C's m rows of n at stride rsc, per the contract.
            let cs = unsafe { std::slice::from_raw_parts_mut(c, (m - 1) * rsc + n) };
            // SAFETY: either ISA implies AVX; Cᵀ is n rows of m.
            unsafe { transpose_avx(ct, n, m, m, cs, rsc) };
            // SAFETY: C's and `from`'s m rows, per the contract.
            unsafe { update_rows(c, rsc, (0, m), n, update) };
            rows_done(0, m);
        } else {
            run(&product, bp, ap, rows_done);
        }
    });
}

#[target_feature(enable = "avx512f")]
unsafe fn passes_avx512(
    product: &Product,
    bp: &mut Vec<f32>,
    ap: &mut Vec<f32>,
    done: &mut dyn FnMut(usize, usize),
) {
    // SAFETY: AVX-512 (and with it AVX) is enabled here.
    unsafe { passes::<Avx512, 12, 8>(product, bp, ap, done) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn passes_avx2(
    product: &Product,
    bp: &mut Vec<f32>,
    ap: &mut Vec<f32>,
    done: &mut dyn FnMut(usize, usize),
) {
    // SAFETY: AVX2 and FMA are enabled here.
    unsafe { passes::<Avx2, 6, 4>(product, bp, ap, done) }
}

/// One product's operands.
struct Product {
    m: usize,
    k: usize,
    n: usize,
    a: Strided,
    b: Strided,
    c: *mut f32,
    rsc: usize,
    /// C ← from − C·scale as C becomes final (`from` at C's strides).
    from: Option<(*const f32, f32)>,
}

/// C ← from − C·scale on rows `first..first + rows` of C (row stride
/// `rsc`, n columns), `from` laid out as C; nothing without an update.
///
/// # Safety
/// Those rows of C and of `from` are valid, and do not overlap.
unsafe fn update_rows(
    c: *mut f32,
    rsc: usize,
    (first, rows): (usize, usize),
    n: usize,
    update: Option<(*const f32, f32)>,
) {
    let Some((from, scale)) = update else {
        return;
    };
    for i in first..first + rows {
        // SAFETY: row i of both, per the contract.
        let (c, from) = unsafe {
            (
                std::slice::from_raw_parts_mut(c.add(i * rsc), n),
                std::slice::from_raw_parts(from.add(i * rsc), n),
            )
        };
        scaled_sub(from, scale, c);
    }
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
/// of `KC` (in order: the summation order), rows in tiles of `MR`, then
/// columns in panels two vectors wide (one, for a last panel that narrow);
/// a last tile of at most `SHORT` rows runs a kernel of that many.
/// A tile row's final pass ends with `done` on its rows.
///
/// # Safety
/// `S`'s features are enabled in the caller, and AVX; the product's
/// pointers are valid as `sgemm` requires.
#[inline(always)]
unsafe fn passes<S: Simd, const MR: usize, const SHORT: usize>(
    product: &Product,
    bp: &mut Vec<f32>,
    ap: &mut Vec<f32>,
    done: &mut dyn FnMut(usize, usize),
) {
    let &Product {
        m,
        k,
        n,
        a,
        b,
        c,
        rsc,
        from,
    } = product;
    let lanes = S::LANES;
    let direct_b = b.cs == 1 && m <= DIRECT_B_ROWS;
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        let wide = nc > PACK_A_ABOVE;
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            let b_block = aligned(bp, kc * nc.next_multiple_of(lanes));
            if direct_b {
                // Only a ragged last panel is packed (where a panel starting
                // at column `start` lies: kc·start into the block).
                let ragged = panels(nc, lanes).last().filter(|col| col.cols < col.width);
                if let Some(Panel { start, cols, .. }) = ragged {
                    let out = &mut b_block[kc * start..];
                    // SAFETY: rows p0..p0+kc and the panel's columns are in B.
                    unsafe { pack_b::<S>(b, (p0, kc), (j0 + start, cols), out) };
                }
            } else {
                // SAFETY: rows p0..p0+kc and columns j0..j0+nc are in B.
                unsafe { pack_b::<S>(b, (p0, kc), (j0, nc), b_block) };
            }
            for i0 in (0..m).step_by(MR) {
                let rows = MR.min(m - i0);
                // A is read where it lies when its rows are contiguous and
                // near each other (a tile's rows stay in L1 along K), or,
                // for narrow passes, when its columns are and the tile is
                // whole (the view would read past A's end). Otherwise it
                // is packed.
                let by_steps = a.rs == 1 && a.cs > 0 && rows == MR && !wide;
                let panel_a: APanel<MR> = if a.cs == 1 && !(wide && a.rs >= PACK_A_ROWS_APART) {
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
                    unsafe { pack_a_panel::<S, MR>(a, (i0, rows), (p0, kc), panel) };
                    APanel::Packed(panel.as_ptr(), MR)
                };
                for col in panels(nc, lanes) {
                    let (width, cols) = (col.width, col.cols);
                    // SAFETY: the panel holds kc steps of its width; the
                    // tile's rows and columns are in C.
                    unsafe {
                        // B where it lies, or its packed panel.
                        let (tile_b, b_step) = if direct_b && cols == width {
                            (b.at(p0, j0 + col.start), b.rs)
                        } else {
                            (b_block[kc * col.start..].as_ptr(), width as isize)
                        };
                        let at = i0 * rsc + j0 + col.start;
                        let tile = Tile {
                            b: tile_b,
                            b_step,
                            c: c.add(at),
                            rsc,
                            rows,
                            cols,
                            first: p0 == 0,
                        };
                        // The last block of K, with an update: `from`'s
                        // tile, fetched while the sums run.
                        let update = from
                            .filter(|_| p0 + kc == k)
                            .map(|(f, scale)| (f.add(at), scale));
                        if let Some((f, _)) = update {
                            for i in 0..rows {
                                for v in (0..cols).step_by(lanes) {
                                    _mm_prefetch::<_MM_HINT_T0>(f.add(i * rsc + v) as *const i8);
                                }
                            }
                        }
                        let two = width == 2 * lanes;
                        let short = rows <= SHORT;
                        match (&panel_a, short) {
                            (&APanel::Packed(ptr, step), false) => {
                                any_width::<S, MR, _>(kc, Contiguous { ptr, step }, &tile, two)
                            }
                            (&APanel::Packed(ptr, step), true) => {
                                any_width::<S, SHORT, _>(kc, Contiguous { ptr, step }, &tile, two)
                            }
                            (APanel::Rows(r), false) => {
                                any_width::<S, MR, _>(kc, RowPtrs(*r), &tile, two)
                            }
                            (APanel::Rows(r), true) => {
                                any_width::<S, SHORT, _>(kc, RowPtrs(*r), &tile, two)
                            }
                        }
                        if let Some(update) = update {
                            update_tile::<S>(&tile, update);
                        }
                    }
                }
                if p0 + kc == k && j0 + nc == n {
                    done(i0, rows);
                }
            }
        }
    }
}

/// A panel of packed B: its first column in the pass, its width (one or
/// two vectors) and how many of its columns are in B.
struct Panel {
    start: usize,
    width: usize,
    cols: usize,
}

/// The panels that cover `nc` columns: two vectors wide each, the last
/// one vector wide when that covers what remains.
fn panels(nc: usize, lanes: usize) -> impl Iterator<Item = Panel> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = nc.checked_sub(start).filter(|&left| left > 0)?;
        let width = if left <= lanes { lanes } else { 2 * lanes };
        let panel = Panel {
            start,
            width,
            cols: width.min(left),
        };
        start += width;
        Some(panel)
    })
}

/// `len` elements of `buf` starting on a 64-byte boundary.
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len + 16 {
        buf.resize(len + 16, 0.0);
    }
    let skip = buf.as_ptr().align_offset(64).min(16);
    &mut buf[skip..skip + len]
}

/// Where the tile's A values lie.
enum APanel<const MR: usize> {
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
struct RowPtrs<const MR: usize>([*const f32; MR]);

impl<const MR: usize> TileA for RowPtrs<MR> {
    #[inline(always)]
    unsafe fn get(self, i: usize, p: usize) -> f32 {
        // SAFETY: the caller's.
        unsafe { *self.0[i].add(p) }
    }
}

/// Where one tile's B panel and C lie, and which of its C elements exist.
struct Tile {
    b: *const f32,
    /// Elements from one step's B vectors to the next's.
    b_step: isize,
    c: *mut f32,
    rsc: usize,
    rows: usize,
    cols: usize,
    /// The first block of K: C is written, not added to.
    first: bool,
}

/// C ← from − C·scale on a tile just stored (in L1), `from` at the tile's
/// first element with C's row stride: the multiply, then the subtraction.
/// Not in the kernel's own store: its accumulators and row pointers fill
/// the registers, and one more pointer live across its loop made the
/// 32×300×275 product with A read in place (rows by pointer) 2.2× slower.
///
/// # Safety
/// `S`'s features are enabled in the caller; the tile's `rows`×`cols`
/// elements of C and of `from` are valid.
#[inline(always)]
unsafe fn update_tile<S: Simd>(tile: &Tile, (from, scale): (*const f32, f32)) {
    let lanes = S::LANES;
    // SAFETY (of every intrinsic below): the caller enables the features;
    // the loads and stores stay within the tile's elements.
    let scale = unsafe { S::splat(scale) };
    for i in 0..tile.rows {
        for v in (0..tile.cols).step_by(lanes) {
            let n = (tile.cols - v).min(lanes);
            unsafe {
                let (at, f) = (tile.c.add(i * tile.rsc + v), from.add(i * tile.rsc + v));
                let out = S::sub(S::load_first(f, n), S::mul(S::load_first(at, n), scale));
                S::store_first(at, out, n);
            }
        }
    }
}

/// `tile_kernel` two vectors wide or one.
///
/// # Safety
/// As `tile_kernel`.
#[inline(always)]
unsafe fn any_width<S: Simd, const MR: usize, A: TileA>(kc: usize, a: A, tile: &Tile, two: bool) {
    // SAFETY: the caller's.
    unsafe {
        if two {
            tile_kernel::<S, MR, 2, _>(kc, a, tile)
        } else {
            tile_kernel::<S, MR, 1, _>(kc, a, tile)
        }
    }
}

/// One MR × (V vectors) tile of C over `kc` steps: C = sum (first block of
/// K) or C + sum, for the tile's first `rows` rows and `cols` columns.
///
/// # Safety
/// `S`'s features are enabled in the caller; the panel holds kc·V vectors;
/// `a` covers MR rows and kc steps; the tile's `rows`×`cols` elements of
/// C are writable.
#[inline(always)]
unsafe fn tile_kernel<S: Simd, const MR: usize, const V: usize, A: TileA>(
    kc: usize,
    a: A,
    tile: &Tile,
) {
    let &Tile {
        b,
        b_step,
        c,
        rsc,
        rows,
        cols,
        first,
    } = tile;
    let lanes = S::LANES;
    // C's tile is read (or written) only after the loop: fetch it during.
    for i in 0..rows {
        for v in 0..V {
            // SAFETY: a hint; the address is within row i of the tile.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(c.add(i * rsc + v * lanes) as *const i8) };
        }
    }
    // SAFETY (of every intrinsic below): the caller enables the features;
    // loads and stores stay within the panel, A's tile and C's tile.
    let mut acc = [[unsafe { S::zero() }; V]; MR];
    for p in 0..kc {
        let bv: [S::V; V] = std::array::from_fn(|v| unsafe {
            S::load(b.offset(p as isize * b_step + (v * lanes) as isize))
        });
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = unsafe { S::splat(a.get(i, p)) };
            for (sum, &bv) in row.iter_mut().zip(&bv) {
                *sum = unsafe { S::fma(ai, bv, *sum) };
            }
        }
    }
    let width = V * lanes;
    if rows == MR && cols == width {
        // A whole tile: stored straight from the registers (the loops are
        // over constants, so the accumulators stay in them).
        for (i, row) in acc.iter().enumerate() {
            for (v, &sum) in row.iter().enumerate() {
                unsafe {
                    let at = c.add(i * rsc + v * lanes);
                    let out = if first { sum } else { S::add(S::load(at), sum) };
                    S::store(at, out);
                }
            }
        }
        return;
    }
    // Through memory, read back by rows: indexing the accumulators by the
    // (run-time) row count would keep them in memory inside the loop.
    let mut sums = [0.0f32; MAX_TILE];
    for (i, row) in acc.iter().enumerate() {
        for (v, &sum) in row.iter().enumerate() {
            unsafe { S::store(sums.as_mut_ptr().add(i * width + v * lanes), sum) };
        }
    }
    for i in 0..rows {
        for v in 0..V {
            let n = cols.saturating_sub(v * lanes).min(lanes);
            if n == 0 {
                break;
            }
            unsafe {
                let sum = S::load(sums.as_ptr().add(i * width + v * lanes));
                let at = c.add(i * rsc + v * lanes);
                if n == lanes {
                    let out = if first { sum } else { S::add(S::load(at), sum) };
                    S::store(at, out);
                } else {
                    let out = if first {
                        sum
                    } else {
                        S::add(S::load_first(at, n), sum)
                    };
                    S::store_first(at, out, n);
                }
            }
        }
    }
}

/// Packs rows p0..p0+kc of B, columns j0..j0+nc, in `panels`: each panel
/// step-major, zero past B's last column.
///
/// # Safety
/// `S`'s features and AVX are enabled in the caller; those rows and
/// columns are in B.
#[inline(always)]
unsafe fn pack_b<S: Simd>(
    b: Strided,
    (p0, kc): (usize, usize),
    (j0, nc): (usize, usize),
    out: &mut [f32],
) {
    let lanes = S::LANES;
    assert!(
        out.len() >= kc * nc.next_multiple_of(lanes),
        "B's block buffer"
    );
    if b.cs == 1 && b.rs >= PACK_B_BY_ROWS_APART {
        // Row by row, each row's columns in order: B is read as it lies,
        // a stream the hardware prefetches. Whole vectors are written,
        // zeros past B's last column.
        let width = 2 * lanes;
        // Panels two vectors wide and full, then what is left: one ragged
        // panel (two vectors wide, or one).
        let full = nc / width;
        let last = panels(nc, lanes).nth(full);
        for p in 0..kc {
            // SAFETY: row p0 + p of B from column j0 is in B, nc long;
            // panel q lies at kc·q·width in `out` (asserted above) and
            // holds kc rows of `width`.
            unsafe {
                let src = b.at(p0 + p, j0);
                let dst = out.as_mut_ptr().add(p * width);
                for q in 0..full {
                    let (from, to) = (src.add(q * width), dst.add(q * kc * width));
                    S::store(to, S::load(from));
                    S::store(to.add(lanes), S::load(from.add(lanes)));
                }
                if let Some(Panel { start, width, cols }) = last {
                    let dst = out.as_mut_ptr().add(kc * start + p * width);
                    for v in (0..width).step_by(lanes) {
                        let n = cols.saturating_sub(v).min(lanes);
                        S::store(dst.add(v), S::load_first(src.add(start + v), n));
                    }
                }
            }
        }
        return;
    }
    for Panel { start, width, cols } in panels(nc, lanes) {
        let col = j0 + start;
        let panel = &mut out[kc * start..kc * (start + width)];
        if b.cs != 1 && cols < width {
            // The gathers below write only B's columns; the copies of
            // row-major B write whole vectors, zeros past B's last column.
            for row in panel.chunks_exact_mut(width) {
                row[cols..].fill(0.0);
            }
        }
        if b.cs == 1 {
            for p in 0..kc {
                for v in (0..cols).step_by(lanes) {
                    let n = (cols - v).min(lanes);
                    // SAFETY: n elements of row p0 + p from column col + v
                    // are in B; the panel row holds `width` ≥ v + lanes.
                    unsafe {
                        let src = b.at(p0 + p, col + v);
                        S::store(panel.as_mut_ptr().add(p * width + v), S::load_first(src, n));
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
            // SAFETY: AVX is enabled; the panel holds kc rows of width.
            unsafe { transpose_avx(src, cols, kc, stride, panel, width) };
        } else {
            for j in 0..cols {
                for p in 0..kc {
                    // SAFETY: (p0 + p, col + j) is in B.
                    panel[p * width + j] = unsafe { *b.at(p0 + p, col + j) };
                }
            }
        }
    }
}

/// Packs rows i0..i0+rows, columns p0..p0+kc of A step-major, MR values
/// a step, zero past the last row.
///
/// # Safety
/// `S`'s features are enabled in the caller; MR ≤ `S::LANES`; those rows
/// and columns are in A.
#[inline(always)]
unsafe fn pack_a_panel<S: Simd, const MR: usize>(
    a: Strided,
    (i0, rows): (usize, usize),
    (p0, kc): (usize, usize),
    out: &mut [f32],
) {
    if a.rs == 1 {
        // A step's values are contiguous: one masked copy a step.
        for p in 0..kc {
            // SAFETY: `rows` values from (i0, p0 + p) are in A; MR values
            // from p·MR are in `out`.
            unsafe {
                let v = S::load_first(a.at(i0, p0 + p), rows);
                S::store_first(out.as_mut_ptr().add(p * MR), v, MR);
            }
        }
        return;
    }
    if rows < MR {
        out.fill(0.0);
    }
    if a.cs == 1 && a.rs >= kc as isize && rows >= 8 {
        // Rows contiguous: 8×8 transposes, of rows 0..8 and then of the
        // last 8 (rows in both get the same values twice).
        let len = (rows - 1) * a.rs as usize + kc;
        for first in [0, rows - 8] {
            // SAFETY: rows i0..i0 + rows, columns p0..p0 + kc are in A,
            // which a positive row stride lays out within `len` elements
            // of (i0, p0); the panel holds kc steps of MR.
            unsafe {
                let src =
                    std::slice::from_raw_parts(a.at(i0 + first, p0), len - first * a.rs as usize);
                transpose_avx(src, 8, kc, a.rs as usize, &mut out[first..], MR);
            }
        }
        return;
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

    /// A rows×cols matrix stored row-major, transposed, as every other
    /// element of a wider row-major array, or row-major bottom row first
    /// (a negative row stride): (row stride, column stride, elements,
    /// offset of element (0, 0)).
    fn layouts(rows: usize, cols: usize) -> [(isize, isize, usize, usize); 4] {
        let (r, c) = (rows as isize, cols as isize);
        [
            (c, 1, rows * cols, 0),
            (1, r, rows * cols, 0),
            (2 * c + 3, 2, rows * (2 * cols + 3), 0),
            (-c, 1, rows * cols, (rows - 1) * cols),
        ]
    }

    /// The ISAs with a kernel that this host runs (both, on AVX-512 hosts).
    fn isas() -> Vec<Isa> {
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|i| i.supported())
            .collect();
        if isas.is_empty() {
            eprintln!("neither AVX-512 nor AVX2 + FMA here: the kernels are not used on this host");
        }
        isas
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919) % 1013) as f32 * 1e-3 - 0.5)
            .collect()
    }

    /// Bit for bit `matrixmultiply::sgemm`, for each ISA, on every layout
    /// of A and B, on shapes with ragged tiles in each dimension and K over
    /// several blocks; and with an update, bit for bit its product
    /// followed by `from − C·scale` element by element (the multiply, then
    /// the subtraction, as the element-wise kernels compute it).
    #[test]
    fn products_equal_matrixmultiply_bit_for_bit() {
        let shapes = [
            (6, 7, 8),
            (30, 40, 9),
            (1, 1, 1),
            (12, 256, 32),
            (13, 257, 33),
            (32, 275, 300),
            (1024, 100, 5),
            (100, 1024, 5),
            (25, 600, 17),
            (7, 3, 1100),
            (40, 513, 80),
            (22, 600, 70),
            (60, 300, 50),
            (60, 300, 40),
            (50, 300, 530),
            (49, 40, 520),
            (50, 20, 1100),
            (16, 300, 9),
            (48, 530, 70),
        ];
        let updates = [None, Some(0.37f32)];
        for (isa, (m, k, n)) in isas().into_iter().flat_map(|i| shapes.map(|s| (i, s))) {
            for (update, (rsa, csa, alen, a0)) in layouts(m, k)
                .into_iter()
                .flat_map(|l| updates.map(|u| (u, l)))
            {
                let from = values(m * n, 3);
                for (rsb, csb, blen, b0) in layouts(k, n) {
                    let a = values(alen, m);
                    let b = values(blen, n + 1);
                    let mut want = vec![0.0f32; m * n];
                    let mut got = vec![f32::NAN; m * n];
                    // Each row as it was when reported done, and how
                    // often it was.
                    let mut seen = vec![f32::NAN; m * n];
                    let mut reported = vec![0; m];
                    let gp = got.as_mut_ptr();
                    // SAFETY: from (0, 0), the strides address a and b; C
                    // is m×n.
                    unsafe {
                        let (pa, pb) = (a.as_ptr().add(a0), b.as_ptr().add(b0));
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            pa,
                            rsa,
                            csa,
                            pb,
                            rsb,
                            csb,
                            0.0,
                            want.as_mut_ptr(),
                            n as isize,
                            1,
                        );
                        sgemm(
                            isa,
                            m,
                            k,
                            n,
                            pa,
                            (rsa, csa),
                            pb,
                            (rsb, csb),
                            gp,
                            n,
                            &mut |first, rows| {
                                for i in first..first + rows {
                                    reported[i] += 1;
                                    for j in 0..n {
                                        // SAFETY: (i, j) is in C.
                                        seen[i * n + j] = *gp.add(i * n + j);
                                    }
                                }
                            },
                            update.map(|s| (from.as_ptr(), s)),
                        );
                    }
                    if let Some(scale) = update {
                        for (w, &f) in want.iter_mut().zip(&from) {
                            *w = f - *w * scale;
                        }
                    }
                    let what = format!(
                        "{isa:?} {m}x{k}x{n}, A strides ({rsa}, {csa}), B strides ({rsb}, \
                         {csb}), update {update:?}"
                    );
                    for (c, name) in [(&got, "product"), (&seen, "rows when reported done")] {
                        let same = c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{what}: {name}");
                    }
                    assert!(
                        reported.iter().all(|&r| r == 1),
                        "{what}: rows reported {reported:?}"
                    );
                }
            }
        }
    }

    /// C's row stride is honoured (columns outside the product untouched),
    /// K = 0 gives zeros, and NaN and infinities propagate as in any sum.
    #[test]
    fn strided_c_empty_k_and_non_finite_values() {
        for isa in isas() {
            strided_c_empty_k_and_non_finite(isa);
        }
    }

    fn strided_c_empty_k_and_non_finite(isa: Isa) {
        let (m, k, n, rsc) = (5, 300, 20, 23);
        let mut a = values(m * k, 1);
        let b = values(k * n, 2);
        a[2 * k + 7] = f32::NAN;
        a[4 * k + 299] = f32::INFINITY;
        let mut c = vec![-7.0f32; m * rsc];
        // SAFETY: a is m×k, b k×n, c holds m rows of rsc.
        unsafe {
            sgemm(
                isa,
                m,
                k,
                n,
                a.as_ptr(),
                (k as isize, 1),
                b.as_ptr(),
                (n as isize, 1),
                c.as_mut_ptr(),
                rsc,
                &mut |_, _| {},
                None,
            )
        };
        for i in 0..m {
            for j in 0..rsc {
                let x = c[i * rsc + j];
                if j >= n {
                    assert_eq!(x, -7.0, "{isa:?}: ({i}, {j}) is outside C");
                } else if i == 2 {
                    assert!(x.is_nan(), "{isa:?}: ({i}, {j}) = {x}");
                } else if i == 4 {
                    let sign = b[299 * n + j].signum();
                    assert_eq!(x, sign * f32::INFINITY, "{isa:?}: ({i}, {j})");
                } else {
                    let want: f64 = (0..k)
                        .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                        .sum();
                    assert!(
                        (x as f64 - want).abs() < 1e-3,
                        "{isa:?}: ({i}, {j}) = {x}, want {want}"
                    );
                }
            }
        }
        let mut c = vec![1.0f32; 6];
        // SAFETY: k = 0 reads nothing; c is 2×3.
        unsafe {
            sgemm(
                isa,
                2,
                0,
                3,
                a.as_ptr(),
                (0, 1),
                b.as_ptr(),
                (3, 1),
                c.as_mut_ptr(),
                3,
                &mut |first, rows| assert_eq!((first, rows), (0, 2)),
                None,
            )
        };
        assert_eq!(c, vec![0.0; 6], "{isa:?}: K = 0");
    }
}
