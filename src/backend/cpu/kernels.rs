//! One function per kernel kind, generic over the float type; each writes
//! into an output buffer the backend hands it.

use super::access::{Reader, Typed, borrow, floats, load_ids};
use super::elementwise::{Ctx, evaluate, is_contiguous};
use super::gemm::{Epilogue as GemmEpilogue, gemm};
use super::losses;
use super::par::{PAR_MIN, Pool};
use crate::dtype::HostData;
use crate::error::{Error, Result};
use crate::ir::float::max_nan;
use crate::ir::{BinaryOp, Epilogue, Expr, Float, Kernel, ReduceOp, Slot, SlotId, View};

/// Runs `k` into `out` (the output slot's buffer: its dtype and length).
pub(super) fn run(
    k: &Kernel,
    slot: &Slot,
    read: &Reader<'_>,
    out: &mut HostData,
    pool: &Pool,
) -> Result<()> {
    if out.len() != slot.len || out.dtype() != slot.dtype {
        return Err(Error::invalid(
            "cpu execute",
            "output buffer of another slot",
        ));
    }
    match out {
        HostData::U32(o) => match k {
            Kernel::ArgMax { .. } => argmax(k, read, o, pool),
            _ => Err(Error::invalid(
                "cpu execute",
                format!("{} cannot produce u32", k.name()),
            )),
        },
        HostData::F32(o) => run_typed::<f32>(k, read, o, pool),
        HostData::F64(o) => run_typed::<f64>(k, read, o, pool),
    }
}

/// Evaluates views and an expression into `out`, borrowing every input's
/// buffer; with `acc`, `Expr::Acc` is what `out` held.
fn with_views<T: Typed>(
    pool: &Pool,
    shape: &[usize],
    views: &[View],
    expr: &crate::ir::Expr,
    acc: bool,
    read: &Reader<'_>,
    out: &mut [T],
) -> Result<()> {
    with_inputs(read, views, "elementwise input", |data| {
        evaluate(pool, shape, views, data, expr, acc, out)
    })
}

/// Calls `f` with the contents of every view's buffer, borrowed for the
/// call.
fn with_inputs<T: Typed, R>(
    read: &Reader<'_>,
    views: &[View],
    what: &str,
    f: impl FnOnce(&[&[T]]) -> Result<R>,
) -> Result<R> {
    let guards = views
        .iter()
        .map(|v| Ok(read(v.slot)?.read()))
        .collect::<Result<Vec<_>>>()?;
    let data = guards
        .iter()
        .map(|g| floats::<T>(g, what))
        .collect::<Result<Vec<_>>>()?;
    f(&data)
}

fn run_typed<T: Typed>(k: &Kernel, read: &Reader<'_>, o: &mut [T], pool: &Pool) -> Result<()> {
    let have = o.len();
    let expect = |n: usize| expect_len(k, n, have);
    match k {
        Kernel::Elementwise {
            shape,
            inputs,
            expr,
            ..
        } => with_views(pool, shape, inputs, expr, false, read, o),
        Kernel::Matmul { m, n, .. } => {
            expect(m * n)?;
            matmul(k, read, o, pool)
        }
        Kernel::Reduce { .. } | Kernel::Pad { .. } => axis_kernel(k, read, o, pool),
        Kernel::ArgMax { .. } => Err(Error::invalid("cpu execute", "argmax writes u32")),
        Kernel::Gather { .. } | Kernel::ScatterAdd { .. } => row_kernel(k, read, o, pool),
        Kernel::SoftmaxXent { .. } | Kernel::SoftmaxXentGrad { .. } => {
            losses::softmax_xent(k, read, o, pool)
        }
        Kernel::LogSoftmax {
            input, rows, cols, ..
        } => {
            expect(rows * cols)?;
            borrow!(read, *input, "log_softmax input" => x_guard, x);
            losses::log_softmax(pool, x, *rows, *cols, o)
        }
        Kernel::LogisticLoss { .. } | Kernel::LogisticLossGrad { .. } => {
            losses::logistic(k, read, o, pool)
        }
        Kernel::Custom { .. } => {
            let r = custom::<T>(k, read)?;
            expect(r.len())?;
            o.copy_from_slice(&r);
            Ok(())
        }
        Kernel::IndexAddInPlace { .. } => {
            Err(Error::invalid("cpu execute", "index_add runs in place"))
        }
        Kernel::SoftmaxXentWithGrad { .. } => Err(Error::invalid("cpu execute", "two outputs")),
    }
}

/// An error unless `k`'s `n` values fit the output slot's `have`.
fn expect_len(k: &Kernel, n: usize, have: usize) -> Result<()> {
    if n == have {
        Ok(())
    } else {
        Err(Error::invalid(
            "cpu execute",
            format!("{} produces {n} values for a slot of {have}", k.name()),
        ))
    }
}

/// Reductions (with their epilogues) and padding along an axis.
fn axis_kernel<T: Typed>(k: &Kernel, read: &Reader<'_>, o: &mut [T], pool: &Pool) -> Result<()> {
    let have = o.len();
    let expect = |n: usize| expect_len(k, n, have);
    match k {
        Kernel::Reduce {
            op,
            input,
            outer,
            len,
            inner,
            epilogue,
            ..
        } => {
            expect(outer * inner)?;
            {
                borrow!(read, *input, "reduce input" => x_guard, x);
                reduce(pool, *op, x, *len, *inner, o)?;
            }
            match epilogue {
                None => Ok(()),
                Some(Epilogue { inputs, expr }) => {
                    with_views(pool, &[*outer, *inner], inputs, expr, true, read, o)
                }
            }
        }
        Kernel::Pad {
            input,
            outer,
            len,
            inner,
            before,
            total,
            ..
        } => {
            expect(outer * total * inner)?;
            borrow!(read, *input, "pad input" => x_guard, x);
            pad(pool, x, (*outer, *len, *inner), (*before, *total), o)
        }
        _ => Err(Error::invalid("cpu execute", "not an axis kernel")),
    }
}

/// Row gathers and scatter-adds.
fn row_kernel<T: Typed>(k: &Kernel, read: &Reader<'_>, o: &mut [T], pool: &Pool) -> Result<()> {
    let have = o.len();
    let expect = |n: usize| expect_len(k, n, have);
    match k {
        Kernel::Gather {
            table,
            ids,
            rows,
            dim,
            n,
            ..
        } => {
            borrow!(read, *table, "gather table" => t_guard, t);
            let ids = load_ids(read, *ids, "gather ids", *rows)?;
            let ids = ids.get(..*n).unwrap_or(&ids[..]);
            expect(ids.len() * dim)?;
            gather(pool, t, ids, *dim, o)
        }
        Kernel::ScatterAdd {
            src,
            ids,
            rows,
            dim,
            n,
            ..
        } => {
            expect(rows * dim)?;
            borrow!(read, *src, "scatter_add src" => s_guard, s);
            let ids = load_ids(read, *ids, "scatter_add ids", *rows)?;
            o.fill(T::ZERO);
            scatter_rows(pool, o, s, ids.get(..*n).unwrap_or(&ids[..]), *dim, T::ONE)
        }
        _ => Err(Error::invalid("cpu execute", "not a row kernel")),
    }
}

fn matmul<T: Typed>(k: &Kernel, read: &Reader<'_>, c: &mut [T], pool: &Pool) -> Result<()> {
    let Kernel::Matmul {
        m,
        k,
        n,
        a,
        b,
        trans_a,
        trans_b,
        epilogue,
        ..
    } = k
    else {
        return Err(Error::invalid("cpu execute", "not a matmul"));
    };
    let (m, k, n) = (*m, *k, *n);
    {
        borrow!(read, *a, "matmul a" => av_guard, av);
        borrow!(read, *b, "matmul b" => bv_guard, bv);
        if av.len() < m * k || bv.len() < k * n {
            return Err(Error::invalid(
                "cpu matmul",
                "operand smaller than m·k or k·n",
            ));
        }
        let sa = if *trans_a {
            (1, m as isize)
        } else {
            (k as isize, 1)
        };
        let sb = if *trans_b {
            (1, k as isize)
        } else {
            (n as isize, 1)
        };
        let Some(Epilogue { inputs, expr }) = epilogue else {
            gemm(pool, m, k, n, av, sa, bv, sb, c, None);
            return Ok(());
        };
        // The epilogue runs on C as the GEMM finishes it (rows; an SGD
        // update, tiles), while in cache, on the thread that computed it.
        with_inputs(read, inputs, "matmul epilogue input", |data| {
            let shape = [m, n];
            let ctx = Ctx::new(&shape, inputs, data, expr, true, c.len())?;
            let finish = |at: usize, rows: &mut [T]| ctx.piece(at, rows);
            let epilogue = match scaled_sub(expr, inputs, data, &shape) {
                Some((from, scale)) => GemmEpilogue::ScaledSub(from, scale),
                None => GemmEpilogue::Rows(&finish),
            };
            gemm(pool, m, k, n, av, sa, bv, sb, c, Some(epilogue));
            Ok(())
        })
    }
}

/// `from − acc·scale` (an SGD step on the product, the gradient) as
/// `(from, scale)`: `from` an input read in place over the whole of
/// `shape`, `scale` a constant or an input of one value. The GEMM then
/// applies it in its tiles (`gemm::Epilogue::ScaledSub`), with the same
/// roundings as `Ctx` (the multiply, then the subtraction).
fn scaled_sub<'a, T: Typed>(
    expr: &Expr,
    views: &[View],
    data: &[&'a [T]],
    shape: &[usize],
) -> Option<(&'a [T], T)> {
    let Expr::Binary(BinaryOp::Sub, from, product) = expr else {
        return None;
    };
    let (&Expr::Input(f), Expr::Binary(BinaryOp::Mul, x, y)) = (&**from, &**product) else {
        return None;
    };
    let scale = match (&**x, &**y) {
        (Expr::Acc, s) | (s, Expr::Acc) => s,
        _ => return None,
    };
    let len: usize = shape.iter().product();
    let (fv, fd) = (views.get(f)?, data.get(f)?);
    if !is_contiguous(&fv.strides, shape) {
        return None;
    }
    let from = fd.get(fv.offset..)?.get(..len)?;
    let scale = match *scale {
        Expr::Const(bits) => T::from_f64(f64::from_bits(bits)),
        Expr::Input(s) => {
            let (sv, sd) = (views.get(s)?, data.get(s)?);
            if !sv.strides.iter().all(|&st| st == 0) {
                return None;
            }
            *sd.get(sv.offset)?
        }
        _ => return None,
    };
    Some((from, scale))
}

fn gather<T: Typed>(pool: &Pool, table: &[T], ids: &[u32], dim: usize, o: &mut [T]) -> Result<()> {
    if ids.iter().any(|&i| (i as usize + 1) * dim > table.len()) {
        return Err(Error::invalid("cpu gather", "row past the table"));
    }
    if dim == 0 {
        return Ok(());
    }
    pool.rows(o, dim, dim, |first, rows| {
        for (r, dst) in rows.chunks_mut(dim).enumerate() {
            if let Some(&ahead) = ids.get(first + r + PREFETCH_ROWS) {
                let a = ahead as usize;
                prefetch(&table[a * dim..(a + 1) * dim]);
            }
            let i = ids[first + r] as usize;
            dst.copy_from_slice(&table[i * dim..(i + 1) * dim]);
        }
    });
    Ok(())
}

/// How many rows ahead a gather or a sparse update asks for its next rows:
/// the rows are random in a table far larger than the caches, so each one
/// otherwise waits the full memory latency.
const PREFETCH_ROWS: usize = 8;

/// Asks the CPU to start loading `row`'s cache lines: a hint, which
/// changes no value.
#[inline(always)]
fn prefetch<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = row.as_ptr().cast::<i8>();
        for off in (0..std::mem::size_of_val(row)).step_by(64) {
            // SAFETY: a prefetch never faults, and the address lies inside
            // `row` (SSE is part of x86-64).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// A user op, on the host in f64.
fn custom<T: Typed>(k: &Kernel, read: &Reader<'_>) -> Result<Vec<T>> {
    let Kernel::Custom {
        op,
        inputs,
        input_shapes,
        backward_input,
        ..
    } = k
    else {
        return Err(Error::invalid("cpu execute", "not a custom op"));
    };
    let vals: Vec<Vec<f64>> = inputs
        .iter()
        .map(|&s| Ok(read(s)?.read().to_f64()))
        .collect::<Result<_>>()?;
    let r = match backward_input {
        None => op.forward(&vals, input_shapes)?,
        Some(i) => {
            let (args, g) = vals.split_at(vals.len().saturating_sub(1));
            let g = g
                .first()
                .ok_or_else(|| Error::invalid("custom", "backward without an upstream gradient"))?;
            op.backward(args, input_shapes, g, *i)?
        }
    };
    Ok(r.into_iter().map(T::from_f64).collect())
}

pub(super) fn index_add_in_place(
    k: &Kernel,
    target: &mut HostData,
    read: &Reader<'_>,
    pool: &Pool,
) -> Result<()> {
    let Kernel::IndexAddInPlace {
        src,
        ids,
        scale,
        factor,
        rows,
        dim,
        n,
        ..
    } = k
    else {
        return Err(Error::invalid("cpu execute", "not an index_add"));
    };
    let idv = load_ids(read, *ids, "index_add ids", *rows)?;
    let idv = idv.get(..*n).unwrap_or(&idv[..]);
    let scale = f64::from_bits(*scale);
    match target {
        HostData::F32(t) => {
            let g = read(*src)?.read();
            let s = floats::<f32>(&g, "index_add src")?;
            let scale = times(read, *factor, scale as f32)?;
            scatter_rows(pool, t, s, idv, *dim, scale)
        }
        HostData::F64(t) => {
            let g = read(*src)?.read();
            let s = floats::<f64>(&g, "index_add src")?;
            let scale = times(read, *factor, scale)?;
            scatter_rows(pool, t, s, idv, *dim, scale)
        }
        HostData::U32(_) => Err(Error::invalid("index_add", "target is u32")),
    }
}

/// `scale` times the one-element `factor` slot if there is one, read in
/// the target's precision as the product `x · f` it replaces would read it.
fn times<T: Float + Typed>(read: &Reader<'_>, factor: Option<SlotId>, scale: T) -> Result<T> {
    let Some(f) = factor else {
        return Ok(scale);
    };
    let g = read(f)?.read();
    let v = floats::<T>(&g, "index_add factor")?;
    let v = v
        .first()
        .ok_or_else(|| Error::invalid("index_add", "empty factor"))?;
    Ok(scale * *v)
}

/// `o[ids[i], :] += scale · s[i, :]`, in the order of `i`. With several
/// threads and enough work, the rows of `o` are cut into one range per
/// thread; each range picks out, in order, the ids that fall in it. Every
/// row gets its own additions in the order of `i` whichever range holds
/// it, so how the rows are cut (even by the thread count) changes no bit.
fn scatter_rows<T: Float>(
    pool: &Pool,
    o: &mut [T],
    s: &[T],
    ids: &[u32],
    dim: usize,
    scale: T,
) -> Result<()> {
    if s.len() < ids.len() * dim {
        return Err(Error::invalid("cpu scatter", "source too short"));
    }
    if dim == 0 {
        return Ok(());
    }
    let rows = o.len() / dim;
    if ids.iter().any(|&id| id as usize >= rows) {
        return Err(Error::invalid("cpu scatter", "row out of range"));
    }
    let add = |dst: &mut [T], i: usize| {
        for (d, v) in dst.iter_mut().zip(&s[i * dim..(i + 1) * dim]) {
            *d = *d + scale * *v;
        }
    };
    let ranges = if ids.len() * dim < PAR_MIN {
        1
    } else {
        pool.threads().min(rows)
    };
    if ranges <= 1 {
        for (i, &id) in ids.iter().enumerate() {
            if let Some(&ahead) = ids.get(i + PREFETCH_ROWS) {
                let a = ahead as usize;
                prefetch(&o[a * dim..(a + 1) * dim]);
            }
            let id = id as usize;
            add(&mut o[id * dim..(id + 1) * dim], i);
        }
        return Ok(());
    }
    pool.pieces(
        &mut o[..rows * dim],
        rows.div_ceil(ranges) * dim,
        |start, part| {
            let (lo, len) = (start / dim, part.len() / dim);
            // Ids are picked out a block at a time without a branch: a range
            // takes a random id with odds 1 in `ranges`, a branch the
            // predictor would miss about as often.
            const BLOCK: usize = 256;
            let mut picked = [0u32; BLOCK];
            for (b, block) in ids.chunks(BLOCK).enumerate() {
                let mut n = 0;
                for (j, &id) in block.iter().enumerate() {
                    picked[n] = j as u32;
                    n += usize::from((id as usize).wrapping_sub(lo) < len);
                }
                for (q, &j) in picked[..n].iter().enumerate() {
                    if let Some(&ahead) = picked[..n].get(q + PREFETCH_ROWS) {
                        let a = ids[b * BLOCK + ahead as usize] as usize - lo;
                        prefetch(&part[a * dim..(a + 1) * dim]);
                    }
                    let i = b * BLOCK + j as usize;
                    let r = ids[i] as usize - lo;
                    add(&mut part[r * dim..(r + 1) * dim], i);
                }
            }
        },
    );
    Ok(())
}

/// `x` seen as `[outer, len, inner]` reduced along `len` into `o`
/// (`[outer, inner]`). Pieces of `o` go to threads; every output element
/// is folded over `len` in order, whichever piece holds it.
fn reduce<T: Float>(
    pool: &Pool,
    op: ReduceOp,
    x: &[T],
    len: usize,
    inner: usize,
    o: &mut [T],
) -> Result<()> {
    if x.len() != o.len() * len {
        return Err(Error::invalid("cpu reduce", "input size mismatch"));
    }
    let init = match op {
        ReduceOp::Sum => T::ZERO,
        ReduceOp::Max => T::neg_infinity(),
    };
    if inner < LANES && len > BLOCK {
        reduce_narrow(pool, op, x, len, inner, init, o);
        return Ok(());
    }
    let piece = (PAR_MIN / len.max(1)).max(64);
    pool.pieces(o, piece, |start, part| {
        part.fill(init);
        // Row by row of `[outer, inner]` within this piece.
        let mut done = 0;
        while done < part.len() {
            let at = start + done;
            let (a, i0) = (at / inner, at % inner);
            let run = (inner - i0).min(part.len() - done);
            let dst = &mut part[done..done + run];
            for l in 0..len {
                let s = (a * len + l) * inner + i0;
                let src = &x[s..s + run];
                match op {
                    ReduceOp::Sum => dst.iter_mut().zip(src).for_each(|(d, &v)| *d = *d + v),
                    ReduceOp::Max => dst
                        .iter_mut()
                        .zip(src)
                        .for_each(|(d, &v)| *d = max_nan(*d, v)),
                }
            }
            done += run;
        }
    });
    Ok(())
}

/// Independent partial results per block of a narrow reduction.
const LANES: usize = 8;
/// Elements of the reduced axis per block of a narrow reduction.
const BLOCK: usize = 4096;

/// A reduction to few outputs over a long axis (a norm, a total): one
/// output at a time would be a chain of dependent additions. Each output's
/// axis is cut into blocks of `BLOCK`; a block is folded in `LANES`
/// interleaved partials, combined pairwise; the blocks' results are folded
/// in order. The cuts depend on `len` alone, so the result is the same for
/// any thread count; blocks go to threads.
fn reduce_narrow<T: Float>(
    pool: &Pool,
    op: ReduceOp,
    x: &[T],
    len: usize,
    inner: usize,
    init: T,
    o: &mut [T],
) {
    let f = |a: T, b: T| match op {
        ReduceOp::Sum => a + b,
        ReduceOp::Max => max_nan(a, b),
    };
    let blocks = len.div_ceil(BLOCK);
    let mut partial = vec![init; o.len() * blocks];
    pool.pieces(&mut partial, (PAR_MIN / BLOCK).max(1), |start, part| {
        for (j, p) in part.iter_mut().enumerate() {
            let (out, b) = ((start + j) / blocks, (start + j) % blocks);
            let (a, i) = (out / inner, out % inner);
            let at = |l: usize| x[(a * len + l) * inner + i];
            let (lo, hi) = (b * BLOCK, ((b + 1) * BLOCK).min(len));
            let mut lanes = [init; LANES];
            let mut l = lo;
            while l + LANES <= hi {
                for (k, v) in lanes.iter_mut().enumerate() {
                    *v = f(*v, at(l + k));
                }
                l += LANES;
            }
            for (k, v) in lanes.iter_mut().enumerate().take(hi - l) {
                *v = f(*v, at(l + k));
            }
            let [l0, l1, l2, l3, l4, l5, l6, l7] = lanes;
            *p = f(f(f(l0, l1), f(l2, l3)), f(f(l4, l5), f(l6, l7)));
        }
    });
    for (out, v) in o.iter_mut().enumerate() {
        *v = partial[out * blocks..(out + 1) * blocks]
            .iter()
            .fold(init, |acc, &p| f(acc, p));
    }
}

/// `x` seen as `[outer, len, inner]` into `o` as `[outer, total, inner]`,
/// at `before` along the middle axis, zeros elsewhere.
fn pad<T: Float>(
    pool: &Pool,
    x: &[T],
    (outer, len, inner): (usize, usize, usize),
    (before, total): (usize, usize),
    o: &mut [T],
) -> Result<()> {
    if x.len() != outer * len * inner || before + len > total {
        return Err(Error::invalid("cpu pad", "input size mismatch"));
    }
    let (block, out_block, head) = (len * inner, total * inner, before * inner);
    if out_block == 0 {
        return Ok(());
    }
    // Each element written once, zero or copied, in blocks of outer rows
    // spread over the pool (a concatenation is a sum of these).
    pool.rows(o, out_block, out_block, |first, rows| {
        for (r, row) in rows.chunks_mut(out_block).enumerate() {
            let a = first + r;
            let (zeros, rest) = row.split_at_mut(head);
            let (copied, after) = rest.split_at_mut(block);
            zeros.fill(T::ZERO);
            copied.copy_from_slice(&x[a * block..(a + 1) * block]);
            after.fill(T::ZERO);
        }
    });
    Ok(())
}

/// Index of the first extreme along the middle axis; NaN beats everything.
/// Blocks of outer rows are spread over the pool.
fn arg_extreme<T: Float>(
    pool: &Pool,
    x: &[T],
    (outer, len, inner): (usize, usize, usize),
    min: bool,
    o: &mut [u32],
) -> Result<()> {
    if x.len() != outer * len * inner
        || len == 0
        || u32::try_from(len).is_err()
        || o.len() != outer * inner
    {
        return Err(Error::invalid("cpu argmax", "input size mismatch"));
    }
    if inner == 0 {
        return Ok(());
    }
    pool.rows(o, inner, len * inner, |first, rows| {
        for (r, row) in rows.chunks_mut(inner).enumerate() {
            let a = first + r;
            for (i, out) in row.iter_mut().enumerate() {
                let at = |l: usize| x[(a * len + l) * inner + i];
                let (mut best, mut arg) = (at(0), 0usize);
                for l in 1..len {
                    let v = at(l);
                    if best.is_nan() {
                        break;
                    }
                    let better = if min { v < best } else { v > best };
                    if better || v.is_nan() {
                        best = v;
                        arg = l;
                    }
                }
                *out = arg as u32;
            }
        }
    });
    Ok(())
}

fn argmax(k: &Kernel, read: &Reader<'_>, o: &mut [u32], pool: &Pool) -> Result<()> {
    let Kernel::ArgMax {
        input,
        outer,
        len,
        inner,
        min,
        ..
    } = k
    else {
        return Err(Error::invalid("cpu execute", "not an argmax"));
    };
    let b = read(*input)?.read();
    match &*b {
        HostData::F32(x) => arg_extreme(pool, x, (*outer, *len, *inner), *min, o),
        HostData::F64(x) => arg_extreme(pool, x, (*outer, *len, *inner), *min, o),
        HostData::U32(_) => Err(Error::invalid("cpu argmax", "input is u32")),
    }
}

/// The loss and the gradient of a `SoftmaxXentWithGrad`, into `loss` and
/// `grad` (see `losses::softmax_xent_with_grad`).
pub(super) fn softmax_xent_with_grad(
    k: &Kernel,
    out: &Slot,
    read: &Reader<'_>,
    (loss, grad): (&mut HostData, &mut HostData),
    pool: &Pool,
) -> Result<()> {
    if loss.len() != out.len || loss.dtype() != out.dtype || grad.dtype() != out.dtype {
        return Err(Error::invalid(
            "cpu execute",
            "output buffer of another slot",
        ));
    }
    match (loss, grad) {
        (HostData::F32(l), HostData::F32(g)) => {
            losses::softmax_xent_with_grad(k, read, (l, g), pool)
        }
        (HostData::F64(l), HostData::F64(g)) => {
            losses::softmax_xent_with_grad(k, read, (l, g), pool)
        }
        _ => Err(Error::invalid(
            "cpu execute",
            "softmax_xent_with_grad writes floats",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zero padding large enough to be split over threads equals a plain
    /// loop at any thread count, the padded axis in the middle and last,
    /// into an output that held other values.
    #[test]
    fn pad_matches_a_plain_loop() {
        for (outer, len, inner, before, total) in [(900, 37, 1, 60, 134), (50, 7, 130, 3, 12)] {
            let x: Vec<f32> = (0..outer * len * inner).map(|i| i as f32 + 1.0).collect();
            let mut want = vec![0.0f32; outer * total * inner];
            for a in 0..outer {
                for l in 0..len {
                    for i in 0..inner {
                        want[(a * total + before + l) * inner + i] = x[(a * len + l) * inner + i];
                    }
                }
            }
            assert!(want.len() >= 2 * PAR_MIN, "large enough to split");
            for threads in [1, 2, 3] {
                let pool = Pool::new(threads).unwrap();
                let mut got = vec![f32::NAN; want.len()];
                pad(&pool, &x, (outer, len, inner), (before, total), &mut got).unwrap();
                assert_eq!(got, want, "{outer}x{len}x{inner} at {threads} threads");
            }
        }
        let pool = Pool::new(2).unwrap();
        let mut o = vec![0.0f32; 4];
        assert!(
            pad(&pool, &[1.0; 3], (1, 3, 1), (2, 4), &mut o).is_err(),
            "past the end"
        );
    }

    /// Arg-extremes large enough to be split over threads equal a plain
    /// loop at any thread count, along a middle and a last axis, with ties
    /// (the first wins) and NaN (which beats everything).
    #[test]
    fn arg_extreme_matches_a_plain_loop() {
        for (outer, len, inner) in [(9000, 9, 1), (40, 30, 50)] {
            let mut x: Vec<f32> = (0..outer * len * inner)
                .map(|i| ((i * 37) % 11) as f32)
                .collect();
            x[5 * len * inner + 3 * inner] = f32::NAN;
            for min in [false, true] {
                let mut want = vec![0u32; outer * inner];
                for a in 0..outer {
                    for i in 0..inner {
                        let at = |l: usize| x[(a * len + l) * inner + i];
                        let nan = (0..len).find(|&l| at(l).is_nan());
                        let best = (0..len).fold(0, |b, l| {
                            let better = if min { at(l) < at(b) } else { at(l) > at(b) };
                            if better { l } else { b }
                        });
                        want[a * inner + i] = nan.unwrap_or(best) as u32;
                    }
                }
                for threads in [1, 2, 3] {
                    let pool = Pool::new(threads).unwrap();
                    let mut got = vec![u32::MAX; want.len()];
                    arg_extreme(&pool, &x, (outer, len, inner), min, &mut got).unwrap();
                    assert_eq!(
                        got, want,
                        "{outer}x{len}x{inner} min {min} at {threads} threads"
                    );
                }
            }
        }
    }

    /// Gathers and sparse row updates large enough to take their threaded
    /// and prefetching paths equal a plain loop bit for bit, at any thread
    /// count, with repeated ids and ids at both ends of the table.
    #[test]
    fn gather_and_scatter_match_a_plain_loop() {
        let (rows, dim, n) = (5000, 13, 6000);
        let table: Vec<f32> = (0..rows * dim)
            .map(|i| (i % 977) as f32 * 0.25 - 7.0)
            .collect();
        let mut ids: Vec<u32> = (0..n).map(|i| ((i * 7919) % rows) as u32).collect();
        ids[0] = 0;
        ids[1] = (rows - 1) as u32;
        ids[2] = ids[3];
        let src: Vec<f32> = (0..n * dim)
            .map(|i| (i % 389) as f32 * 0.125 - 3.0)
            .collect();
        let mut want_gather = vec![0.0f32; n * dim];
        let mut want_scatter = table.clone();
        for (r, &id) in ids.iter().enumerate() {
            let id = id as usize;
            want_gather[r * dim..(r + 1) * dim].copy_from_slice(&table[id * dim..(id + 1) * dim]);
            for c in 0..dim {
                want_scatter[id * dim + c] += 0.5 * src[r * dim + c];
            }
        }
        assert!(n * dim >= PAR_MIN, "large enough to split");
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads).unwrap();
            let mut got = vec![f32::NAN; n * dim];
            gather(&pool, &table, &ids, dim, &mut got).unwrap();
            assert_eq!(got, want_gather, "gather at {threads} threads");
            let mut o = table.clone();
            scatter_rows(&pool, &mut o, &src, &ids, dim, 0.5).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(
                bits(&o) == bits(&want_scatter),
                "scatter at {threads} threads"
            );
        }
        let pool = Pool::new(2).unwrap();
        let bad = [rows as u32];
        assert!(gather(&pool, &table, &bad, dim, &mut [0.0; 13]).is_err());
        let mut o = table.clone();
        assert!(scatter_rows(&pool, &mut o, &src, &bad, dim, 1.0).is_err());
    }
}
