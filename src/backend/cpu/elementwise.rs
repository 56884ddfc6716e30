//! Element-wise kernels and matmul epilogues: an `Expr` evaluated over a
//! shape, reading each input through its strided view.
//!
//! The output is split into pieces of `PIECE` elements spread over the
//! pool's threads; each piece is evaluated chunk by chunk, one loop per
//! expression node over a chunk held in a per-thread scratch buffer, so
//! every loop runs over cache-resident, contiguous memory and vectorises,
//! and nothing is allocated once a thread's scratch has grown. Each output
//! element depends only on its own inputs, so the split cannot change a bit.

use std::cell::RefCell;

use super::par::{PAR_MIN, Pool};
use crate::error::{Error, Result};
use crate::ir::{Expr, Float, Side, View};

/// Elements per chunk: small enough that the chunk buffers of a deep
/// expression stay in L1, large enough that a loop's setup is amortised.
const CHUNK: usize = 1024;
/// Elements per parallel piece.
const PIECE: usize = PAR_MIN;

/// A float with a per-thread scratch buffer.
pub(crate) trait Scratch: Float {
    /// Calls `f` with `n` elements of this thread's scratch.
    fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

macro_rules! impl_scratch {
    ($t:ty, $cell:ident) => {
        thread_local! {
            static $cell: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) };
        }
        impl Scratch for $t {
            fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [$t]) -> R) -> R {
                $cell.with(|c| match c.try_borrow_mut() {
                    Ok(mut v) => {
                        if v.len() < n {
                            v.resize(n, 0.0);
                        }
                        f(&mut v[..n])
                    }
                    // Re-entered on this thread: a fresh buffer, still correct.
                    Err(_) => f(&mut vec![0.0; n]),
                })
            }
        }
    };
}
impl_scratch!(f32, SCRATCH_F32);
impl_scratch!(f64, SCRATCH_F64);

/// Evaluates `expr` over `shape` into `out`, reading input `j` through
/// `views[j]`. With `acc`, `Expr::Acc` reads the value `out` held before
/// (a matmul's or a reduction's result, to which this is the epilogue).
pub(crate) fn evaluate<T: Scratch>(
    pool: &Pool,
    shape: &[usize],
    views: &[View],
    data: &[&[T]],
    expr: &Expr,
    acc: bool,
    out: &mut [T],
) -> Result<()> {
    let ctx = Ctx::new(shape, views, data, expr, acc, out.len())?;
    pool.pieces(out, PIECE, |start, piece| ctx.piece(start, piece));
    Ok(())
}

/// Every view has the shape's rank and stays inside its buffer.
fn check_views<T>(shape: &[usize], views: &[View], data: &[&[T]]) -> Result<()> {
    if views.len() != data.len() {
        return Err(Error::invalid("cpu elementwise", "one buffer per view"));
    }
    for (v, d) in views.iter().zip(data) {
        if v.strides.len() != shape.len() {
            return Err(Error::invalid(
                "cpu elementwise",
                "view rank differs from shape",
            ));
        }
        if let Some(reach) = v.reach(shape)
            && reach >= d.len()
        {
            return Err(Error::invalid(
                "cpu elementwise",
                format!("view reaches {reach} in a buffer of {}", d.len()),
            ));
        }
    }
    Ok(())
}

/// Every input the expression names exists, and `Acc` only in an epilogue.
fn check_expr(e: &Expr, inputs: usize, acc: bool) -> Result<()> {
    match e {
        Expr::Input(i) if *i >= inputs => {
            Err(Error::invalid("cpu elementwise", format!("no input {i}")))
        }
        Expr::Acc if !acc => Err(Error::invalid(
            "cpu elementwise",
            "acc outside a matmul epilogue",
        )),
        Expr::Input(_) | Expr::Acc | Expr::Const(_) => Ok(()),
        Expr::Unary(_, a) => check_expr(a, inputs, acc),
        Expr::Binary(_, a, b) => {
            check_expr(a, inputs, acc)?;
            check_expr(b, inputs, acc)
        }
        Expr::Select(c, a, b) => {
            check_expr(c, inputs, acc)?;
            check_expr(a, inputs, acc)?;
            check_expr(b, inputs, acc)
        }
    }
}

/// Whether a node's value can be read where it is, without a buffer.
fn is_leaf(e: &Expr) -> bool {
    matches!(e, Expr::Input(_) | Expr::Acc | Expr::Const(_))
}

/// Chunk buffers `eval` needs besides its destination: a node's right
/// operand (and a select's condition) is computed first, into a buffer
/// held while the left one is computed into the destination.
fn temps(e: &Expr) -> usize {
    match e {
        Expr::Input(_) | Expr::Acc | Expr::Const(_) => 0,
        Expr::Unary(_, a) => temps(a),
        // A left operand computed into the destination overwrites the
        // accumulator there, so then `Acc` on the right needs a buffer.
        Expr::Binary(_, a, b) if matches!(**b, Expr::Input(_) | Expr::Const(_)) => temps(a),
        Expr::Binary(_, a, b) if is_leaf(a) && is_leaf(b) => 0,
        Expr::Binary(_, a, b) => 1 + temps(a).max(temps(b)),
        Expr::Select(c, a, b) => 2 + temps(a).max(temps(b)).max(temps(c)),
    }
}

/// `out[i] ← from[i] − out[i]·scale` (an SGD step): the multiply, then the
/// subtraction, each rounded, as the element-wise loops compute them. The
/// GEMMs apply it where they fuse the step into a gradient's product.
pub(crate) fn scaled_sub<T: Float>(from: &[T], scale: T, out: &mut [T]) {
    for (o, &f) in out.iter_mut().zip(from) {
        *o = f - *o * scale;
    }
}

/// Whether `strides` are the row-major strides of `shape` (size-1 axes
/// may have any stride).
pub(crate) fn is_contiguous(strides: &[usize], shape: &[usize]) -> bool {
    let mut expect = 1;
    for (&s, &d) in strides.iter().zip(shape).rev() {
        if d != 1 && s != expect {
            return false;
        }
        expect *= d;
    }
    true
}

/// An expression checked against its inputs and an output of `shape`,
/// ready to be evaluated piece by piece (`piece`), on any thread.
pub(crate) struct Ctx<'a, T> {
    shape: &'a [usize],
    views: &'a [View],
    data: &'a [&'a [T]],
    expr: &'a Expr,
    temps: usize,
    /// How each view is read, decided once for every chunk.
    reads: Vec<Read>,
}

/// How a chunk reads one input view.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Contiguous in the shape's order: a slice of the buffer itself.
    InPlace,
    /// One element for the whole shape (every stride 0: a learning rate,
    /// a mean's divisor): that value, never copied out.
    Value,
    /// Anything else: gathered into the chunk's scratch.
    Gathered,
}

impl<'a, T> Ctx<'a, T> {
    /// Checks the views, the expression and the output's length
    /// (`out_len`) against `shape`. With `acc`, `Expr::Acc` reads the
    /// value an output element holds before it is written.
    pub(crate) fn new(
        shape: &'a [usize],
        views: &'a [View],
        data: &'a [&'a [T]],
        expr: &'a Expr,
        acc: bool,
        out_len: usize,
    ) -> Result<Self> {
        let n: usize = shape.iter().product();
        check_views(shape, views, data)?;
        if out_len != n {
            return Err(Error::invalid(
                "cpu elementwise",
                format!("{out_len} outputs for a shape of {n}"),
            ));
        }
        check_expr(expr, views.len(), acc)?;
        Ok(Ctx {
            shape,
            views,
            data,
            expr,
            temps: temps(expr),
            reads: views
                .iter()
                .map(|v| {
                    if v.strides.iter().all(|&s| s == 0) {
                        Read::Value
                    } else if is_contiguous(&v.strides, shape) {
                        Read::InPlace
                    } else {
                        Read::Gathered
                    }
                })
                .collect(),
        })
    }
}

/// One chunk's inputs, read as `Ctx::reads` says.
struct Chunk<'a, T> {
    ctx: &'a Ctx<'a, T>,
    gathered: &'a [T],
    start: usize,
    len: usize,
}

impl<T: Float> Chunk<'_, T> {
    /// Input `j` over the chunk, as `Ctx::reads` says.
    fn input(&self, j: usize) -> Side<'_, T> {
        let v = &self.ctx.views[j];
        let d = &self.ctx.data[j][v.offset.min(self.ctx.data[j].len())..];
        match self.ctx.reads[j] {
            // `check_views` saw the view reach element 0.
            Read::Value => Side::Scalar(d[0]),
            Read::InPlace => Side::Slice(&d[self.start..self.start + self.len]),
            Read::Gathered => Side::Slice(&self.gathered[j * CHUNK..j * CHUNK + self.len]),
        }
    }
}

impl<T: Scratch> Ctx<'_, T> {
    /// Output elements `start..start + out.len()` (in row-major order of
    /// the shape) into `out`.
    pub(crate) fn piece(&self, start: usize, out: &mut [T]) {
        let nv = self.views.len();
        T::with_scratch((nv + self.temps) * CHUNK, |s| {
            let (gathered, temps) = s.split_at_mut(nv * CHUNK);
            for (c, dst) in out.chunks_mut(CHUNK).enumerate() {
                let at = start + c * CHUNK;
                let len = dst.len();
                for (j, (v, d)) in self.views.iter().zip(self.data).enumerate() {
                    if self.reads[j] == Read::Gathered {
                        let d = &d[v.offset.min(d.len())..];
                        let g = &mut gathered[j * CHUNK..j * CHUNK + len];
                        read_view(d, &v.strides, self.shape, at, g);
                    }
                }
                let chunk = Chunk {
                    ctx: self,
                    gathered,
                    start: at,
                    len,
                };
                // With `acc`, the destination holds the accumulator until
                // the first operator writes it; `eval` computes everything
                // that reads it elsewhere before that.
                eval(self.expr, &chunk, dst, temps, Acc::Out);
            }
        });
    }
}

/// Elements `start..start + out.len()` of a strided view, in row-major
/// order of `shape`, copied run by run along the last axis.
fn read_view<T: Float>(d: &[T], strides: &[usize], shape: &[usize], start: usize, out: &mut [T]) {
    let rank = shape.len();
    if rank == 0 {
        out.fill(d[0]);
        return;
    }
    let (last, ls) = (shape[rank - 1], strides[rank - 1]);
    let mut small = [0usize; 8];
    let mut heap = Vec::new();
    let idx: &mut [usize] = if rank <= small.len() {
        &mut small[..rank]
    } else {
        heap.resize(rank, 0);
        &mut heap
    };
    let mut rem = start;
    for a in (0..rank).rev() {
        idx[a] = rem % shape[a];
        rem /= shape[a];
    }
    let mut done = 0;
    while done < out.len() {
        let base: usize = idx.iter().zip(strides).map(|(i, s)| i * s).sum();
        let run = (last - idx[rank - 1]).min(out.len() - done);
        let dst = &mut out[done..done + run];
        match ls {
            0 => dst.fill(d[base]),
            1 => dst.copy_from_slice(&d[base..base + run]),
            _ => dst
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = d[base + i * ls]),
        }
        done += run;
        idx[rank - 1] += run;
        let mut a = rank - 1;
        while idx[a] >= shape[a] && a > 0 {
            idx[a] = 0;
            a -= 1;
            idx[a] += 1;
        }
    }
}

/// Where `Expr::Acc` is read from.
#[derive(Clone, Copy)]
enum Acc<'a, T> {
    /// The destination itself, not yet written by any operator.
    Out,
    /// The destination, read while a subexpression goes to a buffer.
    Held(&'a [T]),
}

/// A leaf's values where they are, without a copy.
fn side<'a, T: Float>(e: &Expr, ch: &'a Chunk<'a, T>, acc: Acc<'a, T>) -> Option<Side<'a, T>> {
    match e {
        Expr::Input(i) => Some(ch.input(*i)),
        Expr::Const(bits) => Some(Side::Scalar(T::from_f64(f64::from_bits(*bits)))),
        Expr::Acc => Some(match acc {
            Acc::Out => Side::Out,
            Acc::Held(s) => Side::Slice(s),
        }),
        _ => None,
    }
}

/// Writes `e` over one chunk into `dst`, one loop per operator node;
/// `temps` holds the chunk buffers of the nodes below. An operator's right
/// operand is computed before its left one is written into `dst`, so that
/// with `Acc::Out` every read of the accumulator comes before `dst`
/// changes (and so that a leaf operand is never copied).
fn eval<'a, T: Float>(
    e: &Expr,
    ch: &'a Chunk<'a, T>,
    dst: &mut [T],
    temps: &mut [T],
    acc: Acc<'a, T>,
) {
    let len = dst.len();
    match e {
        Expr::Input(_) | Expr::Const(_) | Expr::Acc => match side(e, ch, acc) {
            Some(Side::Slice(s)) => dst.copy_from_slice(s),
            Some(Side::Scalar(v)) => dst.fill(v),
            Some(Side::Out) | None => {}
        },
        Expr::Unary(op, a) => match side(a, ch, acc) {
            Some(Side::Slice(s)) => op.map_into(dst, s),
            Some(Side::Scalar(v)) => {
                dst.fill(v);
                op.map(dst);
            }
            Some(Side::Out) => op.map(dst),
            None => {
                eval(a, ch, dst, temps, acc);
                op.map(dst);
            }
        },
        Expr::Binary(op, a, b) => {
            let left = side(a, ch, acc);
            let right = match side(b, ch, acc) {
                // The accumulator in `dst` is gone once a computed left
                // operand is written there.
                Some(Side::Out) if left.is_none() => None,
                s => s,
            };
            let (right, temps) = match right {
                Some(s) => (s, temps),
                None => {
                    let (t, rest) = temps.split_at_mut(CHUNK);
                    let t = &mut t[..len];
                    eval(b, ch, t, rest, held(acc, dst));
                    (Side::Slice(&*t), rest)
                }
            };
            match left {
                Some(l) => op.zip_with(dst, l, right),
                None => {
                    eval(a, ch, dst, temps, acc);
                    op.zip_with(dst, Side::Out, right);
                }
            }
        }
        Expr::Select(c, a, b) => {
            let (y, rest) = temps.split_at_mut(CHUNK);
            let (cv, rest) = rest.split_at_mut(CHUNK);
            let (y, cv) = (&mut y[..len], &mut cv[..len]);
            eval(b, ch, y, rest, held(acc, dst));
            eval(c, ch, cv, rest, held(acc, dst));
            eval(a, ch, dst, rest, acc);
            for ((x, &y), &c) in dst.iter_mut().zip(&*y).zip(&*cv) {
                if c == T::ZERO {
                    *x = y;
                }
            }
        }
    }
}

/// How a subexpression computed into a buffer reads the accumulator.
fn held<'a, T>(acc: Acc<'a, T>, dst: &'a [T]) -> Acc<'a, T> {
    match acc {
        Acc::Out => Acc::Held(dst),
        held => held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `w − s·acc` over a 3×1500 output (several chunks, a partial last
    /// one), `s` a view of one element (every stride 0) read as a value,
    /// `w` once contiguous and once transposed (gathered): each element as
    /// computed alone.
    #[test]
    fn one_value_contiguous_and_gathered_views() {
        let (rows, cols) = (3, 1500);
        let shape = [rows, cols];
        let w: Vec<f32> = (0..rows * cols).map(|i| (i % 37) as f32 * 0.25).collect();
        let s = [0.5f32, 9.0];
        let acc: Vec<f32> = (0..rows * cols).map(|i| (i % 11) as f32 - 5.0).collect();
        let expr = Expr::Input(0).sub(Expr::Input(1).mul(Expr::Acc));
        let one = View {
            slot: 1,
            strides: vec![0, 0],
            offset: 1,
        };
        for (strides, at) in [
            (
                vec![cols, 1],
                Box::new(|i: usize, j: usize| i * cols + j) as Box<dyn Fn(usize, usize) -> usize>,
            ),
            (vec![1, rows], Box::new(|i: usize, j: usize| j * rows + i)),
        ] {
            let views = [
                View {
                    slot: 0,
                    strides,
                    offset: 0,
                },
                one.clone(),
            ];
            let data: [&[f32]; 2] = [&w, &s];
            for threads in [1, 2] {
                let pool = Pool::new(threads).unwrap();
                let mut out = acc.clone();
                evaluate(&pool, &shape, &views, &data, &expr, true, &mut out).unwrap();
                for i in 0..rows {
                    for j in 0..cols {
                        let want = w[at(i, j)] - 9.0 * acc[i * cols + j];
                        assert_eq!(out[i * cols + j].to_bits(), want.to_bits(), "({i}, {j})");
                    }
                }
            }
        }
    }
}
