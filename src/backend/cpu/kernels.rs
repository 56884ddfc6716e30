//! One function per kernel kind, generic over the float type.

use super::CpuBuffer;
use super::scalar::Scalar;
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::schedule::plan::{BinaryOp, Expr, Kernel, ReduceOp, Slot, UnaryOp, View};

/// Elements evaluated per chunk: large enough for tight loops, small enough
/// that every expression node's temporary stays in cache.
const CHUNK: usize = 2048;

type Reader<'a> = dyn Fn(usize) -> Result<&'a CpuBuffer> + 'a;

pub(super) fn run(k: &Kernel, out: &Slot, read: &Reader<'_>) -> Result<HostData> {
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
trait Typed: Scalar {
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

fn ids(d: &HostData, what: &str) -> Result<Vec<u32>> {
    match d {
        HostData::U32(v) => Ok(v.clone()),
        other => Err(Error::invalid(
            "cpu execute",
            format!("{what}: expected u32 ids, got {}", other.dtype()),
        )),
    }
}

/// Binds `$name: &[T]` to a slot's contents without copying them (the read
/// guard lives in `$guard` for the rest of the scope).
macro_rules! borrow {
    ($read:expr, $slot:expr, $what:expr => $guard:ident, $name:ident) => {
        let $guard = $read($slot)?.read();
        let $name: &[T] = floats::<T>(&$guard, $what)?;
    };
}

fn load_ids(read: &Reader<'_>, slot: usize, what: &str, bound: usize) -> Result<Vec<u32>> {
    let b = read(slot)?;
    let v = ids(&b.read(), what)?;
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

fn run_typed<T: Typed>(k: &Kernel, out: &Slot, read: &Reader<'_>) -> Result<Vec<T>> {
    let r = match k {
        Kernel::Elementwise {
            shape,
            inputs,
            expr,
            ..
        } => {
            let guards = inputs
                .iter()
                .map(|v| Ok(read(v.slot)?.read()))
                .collect::<Result<Vec<_>>>()?;
            let data = guards
                .iter()
                .map(|g| floats::<T>(g, "elementwise input"))
                .collect::<Result<Vec<_>>>()?;
            elementwise(shape, inputs, &data, expr, None)?
        }
        Kernel::Matmul {
            m,
            k,
            n,
            a,
            b,
            trans_a,
            trans_b,
            epilogue,
            ..
        } => {
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
                None => c,
                Some(e) => {
                    let guards = e
                        .inputs
                        .iter()
                        .map(|v| Ok(read(v.slot)?.read()))
                        .collect::<Result<Vec<_>>>()?;
                    let data = guards
                        .iter()
                        .map(|g| floats::<T>(g, "matmul epilogue input"))
                        .collect::<Result<Vec<_>>>()?;
                    elementwise(&[m, n], &e.inputs, &data, &e.expr, Some(&c))?
                }
            }
        }
        Kernel::Reduce {
            op,
            input,
            outer,
            len,
            inner,
            ..
        } => {
            borrow!(read, *input, "reduce input" => x_guard, x);
            reduce(*op, x, *outer, *len, *inner)?
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
            let mut o = Vec::with_capacity(n * dim);
            for &i in ids.iter().take(*n) {
                let i = i as usize;
                o.extend_from_slice(&t[i * dim..(i + 1) * dim]);
            }
            o
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
            scatter_rows(&mut o, s, &ids[..*n], *dim, T::ONE);
            o
        }
        Kernel::SoftmaxXent {
            logits,
            labels,
            batch,
            classes,
            ..
        } => {
            borrow!(read, *logits, "softmax_xent logits" => x_guard, x);
            let y = load_ids(read, *labels, "softmax_xent labels", *classes)?;
            let mut total = 0.0f64;
            for b in 0..*batch {
                let row = &x[b * classes..(b + 1) * classes];
                let lse = log_sum_exp(row);
                total += (lse - row[y[b] as usize]).to_f64();
            }
            vec![T::from_f64(total / (*batch).max(1) as f64)]
        }
        Kernel::SoftmaxXentGrad {
            logits,
            labels,
            grad,
            batch,
            classes,
            ..
        } => {
            borrow!(read, *logits, "softmax_xent_grad logits" => x_guard, x);
            let y = load_ids(read, *labels, "softmax_xent_grad labels", *classes)?;
            let g = scalar_of::<T>(read, *grad)?;
            let scale = g / T::from_f64((*batch).max(1) as f64);
            let mut o = vec![T::ZERO; batch * classes];
            for b in 0..*batch {
                let row = &x[b * classes..(b + 1) * classes];
                let lse = log_sum_exp(row);
                for c in 0..*classes {
                    let p = (row[c] - lse).exp();
                    let t = if c == y[b] as usize { T::ONE } else { T::ZERO };
                    o[b * classes + c] = (p - t) * scale;
                }
            }
            o
        }
        Kernel::LogSoftmax {
            input, rows, cols, ..
        } => {
            borrow!(read, *input, "log_softmax input" => x_guard, x);
            let mut o = Vec::with_capacity(rows * cols);
            for r in 0..*rows {
                let row = &x[r * cols..(r + 1) * cols];
                let lse = log_sum_exp(row);
                o.extend(row.iter().map(|&v| v - lse));
            }
            o
        }
        Kernel::LogisticLoss {
            logits, targets, n, ..
        } => {
            borrow!(read, *logits, "logistic_loss logits" => x_guard, x);
            borrow!(read, *targets, "logistic_loss targets" => t_guard, t);
            let mut total = 0.0f64;
            for i in 0..*n {
                let (x, t) = (x[i].to_f64(), t[i].to_f64());
                total += x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
            }
            vec![T::from_f64(total / (*n).max(1) as f64)]
        }
        Kernel::LogisticLossGrad {
            logits,
            targets,
            grad,
            n,
            ..
        } => {
            borrow!(read, *logits, "logistic_loss_grad logits" => x_guard, x);
            borrow!(read, *targets, "logistic_loss_grad targets" => t_guard, t);
            let g = scalar_of::<T>(read, *grad)?;
            let scale = g / T::from_f64((*n).max(1) as f64);
            (0..*n).map(|i| (sigmoid(x[i]) - t[i]) * scale).collect()
        }
        Kernel::Custom {
            op,
            inputs,
            input_shapes,
            backward_input,
            ..
        } => {
            let vals: Vec<Vec<f64>> = inputs
                .iter()
                .map(|&s| Ok(read(s)?.read().to_f64()))
                .collect::<Result<_>>()?;
            let r = match backward_input {
                None => op.forward(&vals, input_shapes)?,
                Some(i) => {
                    let (args, g) = vals.split_at(vals.len() - 1);
                    op.backward(args, input_shapes, &g[0], *i)?
                }
            };
            r.into_iter().map(T::from_f64).collect()
        }
        Kernel::IndexAddInPlace { .. } => {
            return Err(Error::invalid("cpu execute", "index_add runs in place"));
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
    let scale = f64::from_bits(*scale);
    match target {
        HostData::F32(t) => {
            let g = read(*src)?.read();
            let s = floats::<f32>(&g, "index_add src")?;
            scatter_rows(t, s, &idv[..*n], *dim, scale as f32);
        }
        HostData::F64(t) => {
            let g = read(*src)?.read();
            let s = floats::<f64>(&g, "index_add src")?;
            scatter_rows(t, s, &idv[..*n], *dim, scale);
        }
        HostData::U32(_) => return Err(Error::invalid("index_add", "target is u32")),
    }
    Ok(())
}

fn scatter_rows<T: Scalar>(o: &mut [T], s: &[T], ids: &[u32], dim: usize, scale: T) {
    for (i, &id) in ids.iter().enumerate() {
        let dst = &mut o[id as usize * dim..(id as usize + 1) * dim];
        for (d, v) in dst.iter_mut().zip(&s[i * dim..(i + 1) * dim]) {
            *d = *d + scale * *v;
        }
    }
}

fn scalar_of<T: Typed>(read: &Reader<'_>, slot: usize) -> Result<T> {
    let g = read(slot)?.read();
    floats::<T>(&g, "upstream gradient")?
        .first()
        .copied()
        .ok_or_else(|| Error::invalid("cpu execute", "empty upstream gradient"))
}

fn log_sum_exp<T: Scalar>(row: &[T]) -> T {
    let mut m = T::neg_infinity();
    for &v in row {
        if v > m {
            m = v;
        }
    }
    if m == T::neg_infinity() {
        return m;
    }
    let s = row.iter().fold(T::ZERO, |s, &v| s + (v - m).exp());
    m + s.ln()
}

fn sigmoid<T: Scalar>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

fn reduce<T: Scalar>(
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
                ReduceOp::Max => dst.iter_mut().zip(src).for_each(|(d, &v)| *d = max(*d, v)),
            }
        }
    }
    Ok(o)
}

/// NaN-propagating max (a NaN in either operand gives NaN).
fn max<T: Scalar>(a: T, b: T) -> T {
    #[allow(clippy::eq_op)]
    let a_nan = a != a;
    if a_nan || a >= b { a } else { b }
}

/// Evaluates `expr` over `shape`, reading input `j` through `views[j]`.
/// `acc` is the matmul accumulator for an epilogue.
pub(crate) fn elementwise<T: Scalar>(
    shape: &[usize],
    views: &[View],
    data: &[&[T]],
    expr: &Expr,
    acc: Option<&[T]>,
) -> Result<Vec<T>> {
    let n: usize = shape.iter().product();
    for (v, d) in views.iter().zip(data) {
        if v.strides.len() != shape.len() {
            return Err(Error::invalid(
                "cpu elementwise",
                "view rank differs from shape",
            ));
        }
        let max_off: usize = shape
            .iter()
            .zip(&v.strides)
            .map(|(&s, &st)| s.saturating_sub(1) * st)
            .sum();
        if n > 0 && max_off >= d.len() {
            return Err(Error::invalid(
                "cpu elementwise",
                format!("view reaches {max_off} in a buffer of {}", d.len()),
            ));
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut bufs: Vec<Vec<T>> = vec![Vec::with_capacity(CHUNK); views.len()];
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        for ((v, d), b) in views.iter().zip(data).zip(bufs.iter_mut()) {
            b.clear();
            read_view(d, &v.strides, shape, start, len, b);
        }
        let acc_chunk = acc.map(|a| &a[start..start + len]);
        out.extend(eval(expr, &bufs, acc_chunk, len)?);
        start += len;
    }
    Ok(out)
}

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

fn read_view<T: Scalar>(
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

fn eval<T: Scalar>(e: &Expr, inputs: &[Vec<T>], acc: Option<&[T]>, len: usize) -> Result<Vec<T>> {
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
            // One loop per op (not a function pointer per element), so each
            // loop inlines and vectorises.
            macro_rules! map {
                ($f:expr) => {
                    v.iter_mut().for_each(|x| *x = $f(*x))
                };
            }
            match op {
                UnaryOp::Neg => map!(|x: T| -x),
                UnaryOp::Exp => map!(|x: T| x.exp()),
                UnaryOp::Log => map!(|x: T| x.ln()),
                UnaryOp::Sqrt => map!(|x: T| x.sqrt()),
                UnaryOp::Tanh => map!(|x: T| x.tanh()),
                UnaryOp::Sigmoid => map!(sigmoid::<T>),
                // `x < 0` keeps NaN as NaN, so faults stay visible.
                UnaryOp::Relu => map!(|x: T| if x < T::ZERO { T::ZERO } else { x }),
                UnaryOp::Recip => map!(|x: T| T::ONE / x),
            }
            v
        }
        Expr::Binary(op, a, b) => {
            let mut x = eval(a, inputs, acc, len)?;
            let y = eval(b, inputs, acc, len)?;
            macro_rules! zip {
                ($f:expr) => {
                    x.iter_mut().zip(&y).for_each(|(a, &b)| *a = $f(*a, b))
                };
            }
            match op {
                BinaryOp::Add => zip!(|a: T, b: T| a + b),
                BinaryOp::Sub => zip!(|a: T, b: T| a - b),
                BinaryOp::Mul => zip!(|a: T, b: T| a * b),
                BinaryOp::Div => zip!(|a: T, b: T| a / b),
                BinaryOp::Max => zip!(max::<T>),
                BinaryOp::Gt => zip!(|a: T, b: T| if a > b { T::ONE } else { T::ZERO }),
                BinaryOp::Ge => zip!(|a: T, b: T| if a >= b { T::ONE } else { T::ZERO }),
                BinaryOp::Eq => zip!(|a: T, b: T| if a == b { T::ONE } else { T::ZERO }),
            }
            x
        }
    })
}
