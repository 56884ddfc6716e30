//! `+` distributes, `max` routes, `*` switches: binary element-wise ops with
//! NumPy broadcasting, and the plain unary functions.

use super::{float, same_device, same_float};
use crate::error::{Error, Result};
use crate::graph::Op;
use crate::schedule::plan::{BinaryOp, UnaryOp};
use crate::tensor::Tensor;

/// The NumPy broadcast of two shapes (aligned at the right; a 1 stretches).
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

fn binary(op: BinaryOp, name: &'static str, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_device(name, a, b)?;
    same_float(name, a, b)?;
    let shape = broadcast_shapes(name, a.shape(), b.shape())?;
    Ok(Tensor::op(
        Op::Binary(op),
        vec![a.clone(), b.clone()],
        shape,
        a.dtype(),
    ))
}

pub(crate) fn unary(op: UnaryOp, a: &Tensor) -> Tensor {
    Tensor::op(
        Op::Unary(op),
        vec![a.clone()],
        a.shape().to_vec(),
        a.dtype(),
    )
}

impl Tensor {
    /// Element-wise sum with broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        binary(BinaryOp::Add, "add", self, other)
    }
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        binary(BinaryOp::Sub, "sub", self, other)
    }
    /// The Hadamard (element-wise) product, with broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        binary(BinaryOp::Mul, "mul", self, other)
    }
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        binary(BinaryOp::Div, "div", self, other)
    }
    /// Element-wise maximum; the gradient goes to the larger input (ties:
    /// the first).
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        binary(BinaryOp::Max, "maximum", self, other)
    }
    /// 1 where `self > other`, else 0 (no gradient).
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        binary(BinaryOp::Gt, "gt", self, other)
    }
    /// 1 where `self >= other`, else 0 (no gradient).
    pub fn ge(&self, other: &Tensor) -> Result<Tensor> {
        binary(BinaryOp::Ge, "ge", self, other)
    }
    /// 1 where `self == other`, else 0 (no gradient).
    pub fn eq_mask(&self, other: &Tensor) -> Result<Tensor> {
        binary(BinaryOp::Eq, "eq", self, other)
    }

    /// A 0-d constant of this tensor's dtype and device.
    pub fn constant_like(&self, v: f64) -> Tensor {
        Tensor::full(&[], v, self.dtype(), &self.device())
    }
    pub fn add_scalar(&self, v: f64) -> Result<Tensor> {
        self.add(&self.constant_like(v))
    }
    pub fn mul_scalar(&self, v: f64) -> Result<Tensor> {
        self.mul(&self.constant_like(v))
    }
    /// `v - self`.
    pub fn rsub_scalar(&self, v: f64) -> Result<Tensor> {
        self.constant_like(v).sub(self)
    }

    pub fn neg(&self) -> Result<Tensor> {
        float("neg", self)?;
        Ok(unary(UnaryOp::Neg, self))
    }
    pub fn exp(&self) -> Result<Tensor> {
        float("exp", self)?;
        Ok(unary(UnaryOp::Exp, self))
    }
    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        float("log", self)?;
        Ok(unary(UnaryOp::Log, self))
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        float("sqrt", self)?;
        Ok(unary(UnaryOp::Sqrt, self))
    }
    /// `1 / self`.
    pub fn recip(&self) -> Result<Tensor> {
        float("recip", self)?;
        Ok(unary(UnaryOp::Recip, self))
    }
    pub fn square(&self) -> Result<Tensor> {
        self.mul(self)
    }
}

/// Backward of the plain unary functions; the non-linearities are in
/// `activation.rs`.
pub(crate) fn unary_backward(op: UnaryOp, x: &Tensor, out: &Tensor, g: &Tensor) -> Result<Tensor> {
    match op {
        UnaryOp::Neg => g.neg(),
        // d/dx e^x = e^x: reuse the output.
        UnaryOp::Exp => g.mul(out),
        UnaryOp::Log => g.div(x),
        UnaryOp::Sqrt => g.mul_scalar(0.5)?.div(out),
        UnaryOp::Recip => g.mul(&out.square()?)?.neg(),
        UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Relu => {
            super::activation::backward(op, x, out, g)
        }
    }
}

/// `+` hands g to both inputs; `*` switches them; `max` routes g to the
/// winner. Each gradient is summed back to its input's (pre-broadcast) shape.
pub(crate) fn binary_backward(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let (ga, gb) = match op {
        BinaryOp::Add => (g.clone(), g.clone()),
        BinaryOp::Sub => (g.clone(), g.neg()?),
        BinaryOp::Mul => (g.mul(b)?, g.mul(a)?),
        BinaryOp::Div => (g.div(b)?, g.mul(a)?.div(&b.square()?)?.neg()?),
        BinaryOp::Max => {
            let a_wins = a.ge(b)?;
            (g.mul(&a_wins)?, g.mul(&a_wins.rsub_scalar(1.0)?)?)
        }
        BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Eq => return Ok(vec![None, None]),
    };
    Ok(vec![
        Some(ga.sum_to_shape(a.shape())?),
        Some(gb.sum_to_shape(b.shape())?),
    ])
}
