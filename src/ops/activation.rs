//! Element-wise non-linearities h = f(z). The Jacobian is diag(f'(z)), so the
//! backward pass is a Hadamard product: δ = g ⊙ f'(z). Each activation says
//! whether `df` reads the saved output (tanh, logistic: cheaper, and the
//! output is kept anyway for the next layer) or the input (ReLU).

use super::elementwise::unary;
use super::float;
use crate::error::{Error, Result};
use crate::schedule::plan::UnaryOp;
use crate::tensor::Tensor;

/// What the derivative is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DfReads {
    Output,
    Input,
}

/// f and df side by side.
pub struct Activation {
    pub op: UnaryOp,
    pub df_reads: DfReads,
    /// f'(·) as a tensor expression of what `df_reads` names.
    pub df: fn(&Tensor) -> Result<Tensor>,
}

pub const TANH: Activation = Activation {
    op: UnaryOp::Tanh,
    df_reads: DfReads::Output,
    // tanh'(z) = 1 - tanh(z)²
    df: |y| y.square()?.rsub_scalar(1.0),
};

pub const LOGISTIC: Activation = Activation {
    op: UnaryOp::Sigmoid,
    df_reads: DfReads::Output,
    // σ'(z) = σ(z)(1 - σ(z))
    df: |y| y.mul(&y.rsub_scalar(1.0)?),
};

pub const RELU: Activation = Activation {
    op: UnaryOp::Relu,
    df_reads: DfReads::Input,
    // relu'(z) = [z > 0]
    df: |z| z.gt(&z.constant_like(0.0)),
};

pub fn activation(op: UnaryOp) -> Option<&'static Activation> {
    match op {
        UnaryOp::Tanh => Some(&TANH),
        UnaryOp::Sigmoid => Some(&LOGISTIC),
        UnaryOp::Relu => Some(&RELU),
        _ => None,
    }
}

impl Tensor {
    pub fn tanh(&self) -> Result<Tensor> {
        float("tanh", self)?;
        Ok(unary(UnaryOp::Tanh, self))
    }
    /// The logistic function σ(z) = 1 / (1 + e^{-z}).
    pub fn sigmoid(&self) -> Result<Tensor> {
        float("sigmoid", self)?;
        Ok(unary(UnaryOp::Sigmoid, self))
    }
    pub fn relu(&self) -> Result<Tensor> {
        float("relu", self)?;
        Ok(unary(UnaryOp::Relu, self))
    }
}

/// δ = g ⊙ f'(·).
pub(crate) fn backward(op: UnaryOp, z: &Tensor, h: &Tensor, g: &Tensor) -> Result<Tensor> {
    let a = activation(op).ok_or_else(|| Error::invalid("activation", format!("{op:?}")))?;
    let saved = match a.df_reads {
        DfReads::Output => h,
        DfReads::Input => z,
    };
    g.mul(&(a.df)(saved)?)
}
