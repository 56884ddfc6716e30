//! Element-wise kernels and matmul epilogues: an `Expr` evaluated over a
//! shape, reading each input through its strided view, in chunks so that
//! every node's temporary stays in cache and each op's loop vectorises.

use crate::error::{Error, Result};
use crate::ir::{Expr, Float, View};

/// Elements evaluated per chunk: large enough for tight loops, small enough
/// that every expression node's temporary stays in cache.
const CHUNK: usize = 2048;

/// Evaluates `expr` over `shape`, reading input `j` through `views[j]`.
/// `acc` is the matmul accumulator for an epilogue.
pub(crate) fn evaluate<T: Float>(
    shape: &[usize],
    views: &[View],
    data: &[&[T]],
    expr: &Expr,
    acc: Option<&[T]>,
) -> Result<Vec<T>> {
    let n: usize = shape.iter().product();
    check_views(shape, views, data)?;
    if let Some(a) = acc
        && a.len() < n
    {
        return Err(Error::invalid("cpu elementwise", "accumulator too short"));
    }
    let mut out = Vec::with_capacity(n);
    let mut bufs: Vec<Vec<T>> = vec![Vec::with_capacity(CHUNK); views.len()];
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        for ((v, d), b) in views.iter().zip(data).zip(bufs.iter_mut()) {
            b.clear();
            read_view(
                &d[v.offset.min(d.len())..],
                &v.strides,
                shape,
                start,
                len,
                b,
            );
        }
        let acc_chunk = acc.map(|a| &a[start..start + len]);
        out.extend(eval(expr, &bufs, acc_chunk, len)?);
        start += len;
    }
    Ok(out)
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

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

fn read_view<T: Float>(
    d: &[T],
    strides: &[usize],
    shape: &[usize],
    start: usize,
    len: usize,
    out: &mut Vec<T>,
) {
    if strides.iter().all(|&s| s == 0) {
        out.resize(len, d[0]);
        return;
    }
    if strides == contiguous_strides(shape).as_slice() {
        out.extend_from_slice(&d[start..start + len]);
        return;
    }
    let rank = shape.len();
    let mut idx = vec![0usize; rank];
    let mut rem = start;
    for dd in (0..rank).rev() {
        idx[dd] = rem % shape[dd];
        rem /= shape[dd];
    }
    let mut off: usize = idx.iter().zip(strides).map(|(i, s)| i * s).sum();
    for _ in 0..len {
        out.push(d[off]);
        let mut dd = rank;
        while dd > 0 {
            dd -= 1;
            idx[dd] += 1;
            off += strides[dd];
            if idx[dd] < shape[dd] {
                break;
            }
            off -= strides[dd] * shape[dd];
            idx[dd] = 0;
        }
    }
}

/// One chunk of `e`: each operator node is one loop over the chunk.
fn eval<T: Float>(e: &Expr, inputs: &[Vec<T>], acc: Option<&[T]>, len: usize) -> Result<Vec<T>> {
    Ok(match e {
        Expr::Input(i) => inputs
            .get(*i)
            .ok_or_else(|| Error::invalid("cpu elementwise", format!("no input {i}")))?
            .clone(),
        Expr::Const(bits) => vec![T::from_f64(f64::from_bits(*bits)); len],
        Expr::Acc => acc
            .ok_or_else(|| Error::invalid("cpu elementwise", "acc outside a matmul epilogue"))?
            .to_vec(),
        Expr::Unary(op, a) => {
            let mut v = eval(a, inputs, acc, len)?;
            op.map(&mut v);
            v
        }
        Expr::Binary(op, a, b) => {
            let mut x = eval(a, inputs, acc, len)?;
            let y = eval(b, inputs, acc, len)?;
            op.zip(&mut x, &y);
            x
        }
        Expr::Select(c, a, b) => {
            let c = eval(c, inputs, acc, len)?;
            let mut x = eval(a, inputs, acc, len)?;
            let y = eval(b, inputs, acc, len)?;
            for ((x, &y), &c) in x.iter_mut().zip(&y).zip(&c) {
                if c == T::ZERO {
                    *x = y;
                }
            }
            x
        }
    })
}
