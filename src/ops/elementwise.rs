//! Element-wise ops. The `Tensor` methods of every unary and binary op are
//! generated from the op tables in `ir/` (`ir::unary`, `ir::binary`), and so
//! are their backward rules: a unary op's is the Hadamard product
//! g ⊙ f'(·) with f' read from the saved output or input, a binary op's the
//! table's expressions in (g, a, b, y), each summed back to its input's
//! (pre-broadcast) shape. The rules are built from ordinary ops, so
//! gradients of gradients work.

use super::{float, same_device, same_float};
use crate::error::{Error, Result};
use crate::ir::{BinaryOp, Df, Expr, Grad, Op, UnaryOp, binary_ops, unary_ops};
use crate::tensor::Tensor;

/// The NumPy broadcast of two shapes (aligned at the right; a 1 stretches).
/// An [`Error::Shape`] naming `op` and the first axis that differs (neither
/// size 1) when they do not broadcast.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i < r - a.len() {
            1
        } else {
            a[i - (r - a.len())]
        };
        let db = if i < r - b.len() {
            1
        } else {
            b[i - (r - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shape_detail(
                    op,
                    a,
                    b,
                    format!("axis {i} has {da} vs {db}"),
                ));
            }
        };
    }
    Ok(out)
}

impl Tensor {
    /// Applies a binary element-wise op with NumPy broadcasting (both float,
    /// of one dtype, on one device). The generated methods (`add`, `mul`,
    /// `pow`, …) call this. Gradient: the op's rule from the table
    /// ([`BinaryOp`]), each input's summed back over the axes it was
    /// broadcast along; none for the comparison masks.
    pub fn binary(&self, op: BinaryOp, other: &Tensor) -> Result<Tensor> {
        let name = op.name();
        same_device(name, self, other)?;
        same_float(name, self, other)?;
        let shape = broadcast_shapes(name, self.shape(), other.shape())?;
        Ok(Tensor::op(
            Op::Binary(op),
            vec![self.clone(), other.clone()],
            shape,
            self.dtype(),
        ))
    }

    /// Applies a unary element-wise op to a float tensor; the generated
    /// methods (`tanh`, `exp`, …) call this. Gradient: g ⊙ f'(·), with f'
    /// from the op's table entry ([`UnaryOp`]).
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        float(op.name(), self)?;
        Ok(Tensor::op(
            Op::Unary(op),
            vec![self.clone()],
            self.shape().to_vec(),
            self.dtype(),
        ))
    }

    /// `self` is a condition: `on_true` where it is non-zero, else
    /// `on_false`, element-wise with all three broadcast together (PyTorch's
    /// `torch.where(cond, a, b)`, candle's `where_cond`). The branch not
    /// taken never leaks into the result, not even a NaN. The condition is
    /// a float tensor of the branches' dtype (a mask from `gt`, `eq_mask`,
    /// …), on their device. Gradient: g where the condition holds to
    /// `on_true`, elsewhere to `on_false`; none to the condition.
    pub fn where_cond(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        same_device("where", self, on_true)?;
        same_device("where", on_true, on_false)?;
        same_float("where", on_true, on_false)?;
        same_float("where", self, on_true)?;
        let ab = broadcast_shapes("where", on_true.shape(), on_false.shape())?;
        let shape = broadcast_shapes("where", self.shape(), &ab)?;
        Ok(Tensor::op(
            Op::Where,
            vec![self.clone(), on_true.clone(), on_false.clone()],
            shape,
            on_true.dtype(),
        ))
    }

    /// A 0-d constant of this tensor's dtype and device (it broadcasts
    /// against any shape; never stored, folded into the kernels that read
    /// it). A constant: no gradient.
    pub fn constant_like(&self, v: f64) -> Tensor {
        Tensor::full(&[], v, self.dtype(), &self.device())
    }
    /// `self + v`. Gradient: g.
    pub fn add_scalar(&self, v: f64) -> Result<Tensor> {
        self.add(&self.constant_like(v))
    }
    /// `self · v`. Gradient: v·g.
    pub fn mul_scalar(&self, v: f64) -> Result<Tensor> {
        self.mul(&self.constant_like(v))
    }
    /// `v - self`. Gradient: −g.
    pub fn rsub_scalar(&self, v: f64) -> Result<Tensor> {
        self.constant_like(v).sub(self)
    }
    /// `self ⊙ self`. Gradient: 2 g ⊙ x.
    pub fn square(&self) -> Result<Tensor> {
        self.mul(self)
    }
    /// `self - v`. Gradient: g.
    pub fn sub_scalar(&self, v: f64) -> Result<Tensor> {
        self.sub(&self.constant_like(v))
    }
    /// `self / v`. Gradient: g / v.
    pub fn div_scalar(&self, v: f64) -> Result<Tensor> {
        self.div(&self.constant_like(v))
    }
    /// `xᵉ` for a constant exponent (`pow` with a 0-d constant; fused like
    /// any element-wise op). A negative base needs an integer `e`.
    /// Gradient: g ⊙ e·xᵉ⁻¹ (0 when e = 0).
    pub fn pow_scalar(&self, e: f64) -> Result<Tensor> {
        self.pow(&self.constant_like(e))
    }
    /// `min(max(x, lo), hi)` element-wise (NaN stays NaN); `lo <= hi`.
    /// Gradient: g where lo ≤ x ≤ hi (bounds included, as in PyTorch),
    /// else 0.
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Tensor> {
        float("clamp", self)?;
        if lo > hi || lo.is_nan() || hi.is_nan() {
            return Err(Error::invalid(
                "clamp",
                format!(
                    "needs lo <= hi, got lo {lo} and hi {hi} (shape {:?})",
                    self.shape()
                ),
            ));
        }
        self.maximum(&self.constant_like(lo))?
            .minimum(&self.constant_like(hi))
    }

    /// An expression of the op tables, built as tensor ops over `vars`
    /// (`Expr::Input(i)` is `vars[i]`); constants take `self`'s dtype and
    /// device.
    pub(crate) fn build_expr(&self, e: &Expr, vars: &[&Tensor]) -> Result<Tensor> {
        match e {
            Expr::Input(i) => vars.get(*i).map(|t| (*t).clone()).ok_or_else(|| {
                Error::invalid(
                    "backward rule",
                    format!("reads variable {i} of {}", vars.len()),
                )
            }),
            Expr::Const(bits) => Ok(self.constant_like(f64::from_bits(*bits))),
            Expr::Acc => Err(Error::invalid("backward rule", "`acc` in a rule")),
            Expr::Unary(op, a) => self.build_expr(a, vars)?.unary(*op),
            Expr::Binary(op, a, b) => {
                let a = self.build_expr(a, vars)?;
                a.binary(*op, &self.build_expr(b, vars)?)
            }
            Expr::Select(c, a, b) => {
                let c = self.build_expr(c, vars)?;
                c.where_cond(&self.build_expr(a, vars)?, &self.build_expr(b, vars)?)
            }
        }
    }
}

macro_rules! unary_methods {
    ($( $(#[doc = $doc:literal])* $variant:ident $method:ident { $($rest:tt)* } )*) => {
        impl Tensor {
            $(
                $(#[doc = $doc])*
                pub fn $method(&self) -> Result<Tensor> {
                    self.unary(UnaryOp::$variant)
                }
            )*
        }
    };
}
unary_ops!(unary_methods);

macro_rules! binary_methods {
    ($( $(#[doc = $doc:literal])* $variant:ident $method:ident { $($rest:tt)* } )*) => {
        impl Tensor {
            $(
                $(#[doc = $doc])*
                ///
                /// Both float, of one dtype, on one device; the shapes
                /// broadcast as in NumPy, and each input's gradient is summed
                /// back over the axes it was broadcast along.
                pub fn $method(&self, other: &Tensor) -> Result<Tensor> {
                    self.binary(BinaryOp::$variant, other)
                }
            )*
        }
    };
}
binary_ops!(binary_methods);

/// δ = g ⊙ f'(·), with f' from the saved output `y` or input `x`.
pub(crate) fn unary_backward(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    let (rule, saved) = match op.df() {
        Df::Output(rule) => (rule, y),
        Df::Input(rule) => (rule, x),
    };
    let df = g.build_expr(&rule(&Expr::Input(0)), &[saved])?;
    g.mul(&df)
}

/// The table's rule for each input, summed back to the input's shape.
pub(crate) fn binary_backward(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    y: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let Grad::Rule(da, db) = op.grad() else {
        return Ok(vec![None, None]);
    };
    let vars = [
        Expr::Input(0),
        Expr::Input(1),
        Expr::Input(2),
        Expr::Input(3),
    ];
    let args = [g, a, b, y];
    let ga = g.build_expr(&da(&vars[0], &vars[1], &vars[2], &vars[3]), &args)?;
    let gb = g.build_expr(&db(&vars[0], &vars[1], &vars[2], &vars[3]), &args)?;
    Ok(vec![
        Some(ga.sum_to_shape(a.shape())?),
        Some(gb.sum_to_shape(b.shape())?),
    ])
}

/// g goes to `a` where the condition holds and to `b` elsewhere.
pub(crate) fn where_backward(
    cond: &Tensor,
    a: &Tensor,
    b: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let zero = g.constant_like(0.0);
    let ga = cond.where_cond(g, &zero)?;
    let gb = cond.where_cond(&zero, g)?;
    Ok(vec![
        None,
        Some(ga.sum_to_shape(a.shape())?),
        Some(gb.sum_to_shape(b.shape())?),
    ])
}
