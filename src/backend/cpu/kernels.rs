//! One function per kernel kind, generic over the float type.

use super::CpuBuffer;
use super::elementwise::evaluate;
use super::gemm::Gemm;
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::ir::float::{max_nan, sigmoid};
use crate::ir::{Epilogue, Float, Kernel, ReduceOp, Slot, View};

type Reader<'a> = dyn Fn(usize) -> Result<&'a CpuBuffer> + 'a;

pub(super) fn run(k: &Kernel, out: &Slot, read: &Reader<'_>) -> Result<HostData> {
    if let Kernel::ArgMax { .. } = k {
        return argmax(k, read).map(HostData::U32);
    }
    match out.dtype {
        DType::F32 => run_typed::<f32>(k, out, read).map(HostData::F32),
        DType::F64 => run_typed::<f64>(k, out, read).map(HostData::F64),
        DType::U32 => Err(Error::invalid(
            "cpu execute",
            format!("{} cannot produce u32", k.name()),
        )),
    }
}

/// Typed access to a buffer's contents.
trait Typed: Gemm {
    fn slice(d: &HostData) -> Option<&[Self]>;
}
impl Typed for f32 {
    fn slice(d: &HostData) -> Option<&[f32]> {
        match d {
            HostData::F32(v) => Some(v),
            _ => None,
        }
    }
}
impl Typed for f64 {
    fn slice(d: &HostData) -> Option<&[f64]> {
        match d {
            HostData::F64(v) => Some(v),
            _ => None,
        }
    }
}

fn floats<'a, T: Typed>(d: &'a HostData, what: &str) -> Result<&'a [T]> {
    T::slice(d).ok_or_else(|| {
        Error::invalid(
            "cpu execute",
            format!(
                "{what}: expected a float buffer of the kernel's dtype, got {}",
                d.dtype()
            ),
        )
    })
}

/// Binds `$name: &[T]` to a slot's contents without copying them (the read
/// guard lives in `$guard` for the rest of the scope).
macro_rules! borrow {
    ($read:expr, $slot:expr, $what:expr => $guard:ident, $name:ident) => {
        let $guard = $read($slot)?.read();
        let $name: &[T] = floats::<T>(&$guard, $what)?;
    };
}

/// u32 ids from `slot`, each checked against `bound`.
fn load_ids(read: &Reader<'_>, slot: usize, what: &str, bound: usize) -> Result<Vec<u32>> {
    let b = read(slot)?;
    let v = match &*b.read() {
        HostData::U32(v) => v.clone(),
        other => {
            return Err(Error::invalid(
                "cpu execute",
                format!("{what}: expected u32 ids, got {}", other.dtype()),
            ));
        }
    };
    if let Some((position, &id)) = v.iter().enumerate().find(|(_, i)| **i as usize >= bound) {
        return Err(Error::IdOutOfRange {
            op: "cpu execute",
            id: id as u64,
            position,
            rows: bound,
        });
    }
    Ok(v)
}

/// Evaluates views and an expression, borrowing every input's buffer.
fn with_views<T: Typed>(
    shape: &[usize],
    views: &[View],
    expr: &crate::ir::Expr,
    acc: Option<&[T]>,
    read: &Reader<'_>,
) -> Result<Vec<T>> {
    let guards = views
        .iter()
        .map(|v| Ok(read(v.slot)?.read()))
        .collect::<Result<Vec<_>>>()?;
    let data = guards
        .iter()
        .map(|g| floats::<T>(g, "elementwise input"))
        .collect::<Result<Vec<_>>>()?;
    evaluate(shape, views, &data, expr, acc)
}

fn run_typed<T: Typed>(k: &Kernel, out: &Slot, read: &Reader<'_>) -> Result<Vec<T>> {
    let r = match k {
        Kernel::Elementwise {
            shape,
            inputs,
            expr,
            ..
        } => with_views(shape, inputs, expr, None, read)?,
        Kernel::Matmul { .. } => matmul(k, read)?,
        Kernel::Reduce {
            op,
            input,
            outer,
            len,
            inner,
            epilogue,
            ..
        } => {
            borrow!(read, *input, "reduce input" => x_guard, x);
            let r = reduce(*op, x, *outer, *len, *inner)?;
            match epilogue {
                None => r,
                Some(Epilogue { inputs, expr }) => {
                    with_views(&[*outer, *inner], inputs, expr, Some(&r), read)?
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
            borrow!(read, *input, "pad input" => x_guard, x);
            pad(x, *outer, *len, *inner, *before, *total)?
        }
        Kernel::ArgMax { .. } => {
            return Err(Error::invalid("cpu execute", "argmax writes u32"));
        }
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
            gather(t, ids.get(..*n).unwrap_or(&ids), *dim)
        }
        Kernel::ScatterAdd {
            src,
            ids,
            rows,
            dim,
            n,
            ..
        } => {
            borrow!(read, *src, "scatter_add src" => s_guard, s);
            let ids = load_ids(read, *ids, "scatter_add ids", *rows)?;
            let mut o = vec![T::ZERO; rows * dim];
            scatter_rows(&mut o, s, ids.get(..*n).unwrap_or(&ids), *dim, T::ONE)?;
            o
        }
        Kernel::SoftmaxXent { .. } | Kernel::SoftmaxXentGrad { .. } => softmax_xent(k, read)?,
        Kernel::LogSoftmax {
            input, rows, cols, ..
        } => {
            borrow!(read, *input, "log_softmax input" => x_guard, x);
            log_softmax(x, *rows, *cols)?
        }
        Kernel::LogisticLoss { .. } | Kernel::LogisticLossGrad { .. } => logistic(k, read)?,
        Kernel::Custom { .. } => custom(k, read)?,
        Kernel::IndexAddInPlace { .. } => {
            return Err(Error::invalid("cpu execute", "index_add runs in place"));
        }
        Kernel::SoftmaxXentWithGrad { .. } => {
            return Err(Error::invalid("cpu execute", "two outputs"));
        }
    };
    if r.len() != out.len {
        return Err(Error::invalid(
            "cpu execute",
            format!(
                "{} produced {} values for a slot of {}",
                k.name(),
                r.len(),
                out.len
            ),
        ));
    }
    Ok(r)
}

fn matmul<T: Typed>(k: &Kernel, read: &Reader<'_>) -> Result<Vec<T>> {
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
    borrow!(read, *a, "matmul a" => av_guard, av);
    borrow!(read, *b, "matmul b" => bv_guard, bv);
    if av.len() < m * k || bv.len() < k * n {
        return Err(Error::invalid(
            "cpu matmul",
            "operand smaller than m·k or k·n",
        ));
    }
    let (rsa, csa) = if *trans_a {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (rsb, csb) = if *trans_b {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let mut c = vec![T::ZERO; m * n];
    T::gemm(m, k, n, av, rsa, csa, bv, rsb, csb, &mut c);
    match epilogue {
        None => Ok(c),
        Some(Epilogue { inputs, expr }) => with_views(&[m, n], inputs, expr, Some(&c), read),
    }
}

fn gather<T: Typed>(table: &[T], ids: &[u32], dim: usize) -> Vec<T> {
    let mut o = Vec::with_capacity(ids.len() * dim);
    for &i in ids {
        let i = i as usize;
        o.extend_from_slice(&table[i * dim..(i + 1) * dim]);
    }
    o
}

/// The numerically careful pieces of a row's log-softmax: its maximum `m`
/// and `log Σ exp(x − m)`. Callers form `(x − m) − log_sum`, so that the
/// result keeps full precision when |m| is large: adding `m` back first
/// (`x − (m + log_sum)`) rounds every output to the precision of `m`.
fn row_stats<T: Float>(row: &[T]) -> (T, T) {
    let mut m = T::neg_infinity();
    for &v in row {
        m = max_nan(v, m);
    }
    if m == T::neg_infinity() || m == T::infinity() || m.is_nan() {
        // No finite shift: all −∞ (the log-sum is −∞), or a +∞/NaN (the
        // outputs are NaN, as in PyTorch).
        let s = row.iter().fold(T::ZERO, |s, &v| s + v.exp());
        return (T::ZERO, s.ln());
    }
    let s = row.iter().fold(T::ZERO, |s, &v| s + (v - m).exp());
    (m, s.ln())
}

fn log_softmax<T: Typed>(x: &[T], rows: usize, cols: usize) -> Result<Vec<T>> {
    if x.len() < rows * cols {
        return Err(Error::invalid("cpu log_softmax", "input too short"));
    }
    let mut o = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let (m, log_sum) = row_stats(row);
        o.extend(row.iter().map(|&v| (v - m) - log_sum));
    }
    Ok(o)
}

/// Softmax cross-entropy (mean over the batch) or its gradient.
fn softmax_xent<T: Typed>(k: &Kernel, read: &Reader<'_>) -> Result<Vec<T>> {
    let (logits, labels, batch, classes, grad) = match k {
        Kernel::SoftmaxXent {
            logits,
            labels,
            batch,
            classes,
            ..
        } => (*logits, *labels, *batch, *classes, None),
        Kernel::SoftmaxXentGrad {
            logits,
            labels,
            grad,
            batch,
            classes,
            ..
        } => (*logits, *labels, *batch, *classes, Some(*grad)),
        _ => return Err(Error::invalid("cpu execute", "not a softmax_xent")),
    };
    borrow!(read, logits, "softmax_xent logits" => x_guard, x);
    let y = load_ids(read, labels, "softmax_xent labels", classes)?;
    if x.len() < batch * classes || y.len() < batch {
        return Err(Error::invalid("cpu softmax_xent", "input too short"));
    }
    let Some(grad) = grad else {
        let mut total = 0.0f64;
        for b in 0..batch {
            let row = &x[b * classes..(b + 1) * classes];
            let (m, log_sum) = row_stats(row);
            total += (log_sum - (row[y[b] as usize] - m)).to_f64();
        }
        return Ok(vec![T::from_f64(total / batch.max(1) as f64)]);
    };
    let g = scalar_of::<T>(read, grad)?;
    let scale = g / T::from_f64(batch.max(1) as f64);
    let mut o = vec![T::ZERO; batch * classes];
    for b in 0..batch {
        let row = &x[b * classes..(b + 1) * classes];
        let (m, log_sum) = row_stats(row);
        for c in 0..classes {
            let p = ((row[c] - m) - log_sum).exp();
            let t = if c == y[b] as usize { T::ONE } else { T::ZERO };
            o[b * classes + c] = (p - t) * scale;
        }
    }
    Ok(o)
}

/// The loss and the gradient of a `SoftmaxXentWithGrad`: the same two
/// computations as `SoftmaxXent` and `SoftmaxXentGrad`, so fused and
/// unfused plans agree exactly.
pub(super) fn softmax_xent_with_grad(
    k: &Kernel,
    out: &Slot,
    read: &Reader<'_>,
) -> Result<(HostData, HostData)> {
    let Kernel::SoftmaxXentWithGrad {
        logits,
        labels,
        grad,
        batch,
        classes,
        out: loss_out,
        grad_out,
    } = *k
    else {
        return Err(Error::invalid(
            "cpu execute",
            "not a softmax_xent_with_grad",
        ));
    };
    let forward = Kernel::SoftmaxXent {
        logits,
        labels,
        batch,
        classes,
        out: loss_out,
    };
    let backward = Kernel::SoftmaxXentGrad {
        logits,
        labels,
        grad,
        batch,
        classes,
        out: grad_out,
    };
    let grad_slot = Slot {
        len: batch * classes,
        ..out.clone()
    };
    Ok((run(&forward, out, read)?, run(&backward, &grad_slot, read)?))
}

/// Mean binary cross-entropy with logits, or its gradient.
fn logistic<T: Typed>(k: &Kernel, read: &Reader<'_>) -> Result<Vec<T>> {
    let (logits, targets, n, grad) = match k {
        Kernel::LogisticLoss {
            logits, targets, n, ..
        } => (*logits, *targets, *n, None),
        Kernel::LogisticLossGrad {
            logits,
            targets,
            grad,
            n,
            ..
        } => (*logits, *targets, *n, Some(*grad)),
        _ => return Err(Error::invalid("cpu execute", "not a logistic loss")),
    };
    borrow!(read, logits, "logistic_loss logits" => x_guard, x);
    borrow!(read, targets, "logistic_loss targets" => t_guard, t);
    if x.len() < n || t.len() < n {
        return Err(Error::invalid("cpu logistic_loss", "input too short"));
    }
    let Some(grad) = grad else {
        let mut total = 0.0f64;
        for i in 0..n {
            let (x, t) = (x[i].to_f64(), t[i].to_f64());
            total += x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
        }
        return Ok(vec![T::from_f64(total / n.max(1) as f64)]);
    };
    let g = scalar_of::<T>(read, grad)?;
    let scale = g / T::from_f64(n.max(1) as f64);
    Ok((0..n).map(|i| (sigmoid(x[i]) - t[i]) * scale).collect())
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
) -> Result<()> {
    let Kernel::IndexAddInPlace {
        src,
        ids,
        scale,
        rows,
        dim,
        n,
        ..
    } = k
    else {
        return Err(Error::invalid("cpu execute", "not an index_add"));
    };
    let idv = load_ids(read, *ids, "index_add ids", *rows)?;
    let idv = idv.get(..*n).unwrap_or(&idv);
    let scale = f64::from_bits(*scale);
    match target {
        HostData::F32(t) => {
            let g = read(*src)?.read();
            let s = floats::<f32>(&g, "index_add src")?;
            scatter_rows(t, s, idv, *dim, scale as f32)
        }
        HostData::F64(t) => {
            let g = read(*src)?.read();
            let s = floats::<f64>(&g, "index_add src")?;
            scatter_rows(t, s, idv, *dim, scale)
        }
        HostData::U32(_) => Err(Error::invalid("index_add", "target is u32")),
    }
}

/// `o[ids[i], :] += scale · s[i, :]`, in the order of `i`.
fn scatter_rows<T: Float>(o: &mut [T], s: &[T], ids: &[u32], dim: usize, scale: T) -> Result<()> {
    if s.len() < ids.len() * dim {
        return Err(Error::invalid("cpu scatter", "source too short"));
    }
    for (i, &id) in ids.iter().enumerate() {
        let dst = o
            .get_mut(id as usize * dim..(id as usize + 1) * dim)
            .ok_or_else(|| Error::invalid("cpu scatter", "row out of range"))?;
        for (d, v) in dst.iter_mut().zip(&s[i * dim..(i + 1) * dim]) {
            *d = *d + scale * *v;
        }
    }
    Ok(())
}

fn scalar_of<T: Typed>(read: &Reader<'_>, slot: usize) -> Result<T> {
    let g = read(slot)?.read();
    floats::<T>(&g, "upstream gradient")?
        .first()
        .copied()
        .ok_or_else(|| Error::invalid("cpu execute", "empty upstream gradient"))
}

fn reduce<T: Float>(
    op: ReduceOp,
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
) -> Result<Vec<T>> {
    if x.len() != outer * len * inner {
        return Err(Error::invalid("cpu reduce", "input size mismatch"));
    }
    let mut o = vec![
        match op {
            ReduceOp::Sum => T::ZERO,
            ReduceOp::Max => T::neg_infinity(),
        };
        outer * inner
    ];
    for a in 0..outer {
        for l in 0..len {
            let src = &x[(a * len + l) * inner..(a * len + l + 1) * inner];
            let dst = &mut o[a * inner..(a + 1) * inner];
            match op {
                ReduceOp::Sum => dst.iter_mut().zip(src).for_each(|(d, &v)| *d = *d + v),
                ReduceOp::Max => dst
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, &v)| *d = max_nan(*d, v)),
            }
        }
    }
    Ok(o)
}

/// `[outer, len, inner]` placed at `before` inside zeros of
/// `[outer, total, inner]`.
fn pad<T: Float>(
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    before: usize,
    total: usize,
) -> Result<Vec<T>> {
    if x.len() != outer * len * inner || before + len > total {
        return Err(Error::invalid("cpu pad", "input size mismatch"));
    }
    let mut o = vec![T::ZERO; outer * total * inner];
    let (block, out_block) = (len * inner, total * inner);
    for a in 0..outer {
        let dst = a * out_block + before * inner;
        o[dst..dst + block].copy_from_slice(&x[a * block..(a + 1) * block]);
    }
    Ok(o)
}

/// Index of the first extreme along the middle axis; NaN beats everything.
fn arg_extreme<T: Float>(
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    min: bool,
) -> Result<Vec<u32>> {
    if x.len() != outer * len * inner || len == 0 || u32::try_from(len).is_err() {
        return Err(Error::invalid("cpu argmax", "input size mismatch"));
    }
    let mut o = Vec::with_capacity(outer * inner);
    for a in 0..outer {
        for i in 0..inner {
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
            o.push(arg as u32);
        }
    }
    Ok(o)
}

fn argmax(k: &Kernel, read: &Reader<'_>) -> Result<Vec<u32>> {
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
        HostData::F32(x) => arg_extreme(x, *outer, *len, *inner, *min),
        HostData::F64(x) => arg_extreme(x, *outer, *len, *inner, *min),
        HostData::U32(_) => Err(Error::invalid("cpu argmax", "input is u32")),
    }
}
