//! Losses. Softmax + cross-entropy is one fused op whose backward is
//! (p − y)/batch; the logistic loss with logits likewise ((σ(x) − t)/n).
//! Both are computed stably (log-sum-exp; log(1 + e^{−|x|})).

use super::float;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::tensor::Tensor;

impl Tensor {
    /// Mean over the batch of `−log softmax(logits)[label]`, a 0-d tensor;
    /// `self` is `[batch, classes]`, `labels` 1-D u32 of length `batch`,
    /// each `< classes` (checked: [`Error::IdOutOfRange`]). One fused op,
    /// computed stably. Gradient: (softmax(logits) − onehot(labels))·g/batch
    /// for the logits; none for the labels. That gradient is itself
    /// differentiable (second order works).
    pub fn softmax_cross_entropy(&self, labels: &Tensor) -> Result<Tensor> {
        float("softmax_cross_entropy", self)?;
        super::same_device("softmax_cross_entropy", self, labels)?;
        let labels = &super::gather::ids_as_data(labels)?;
        if self.rank() != 2 || labels.rank() != 1 || labels.shape()[0] != self.shape()[0] {
            return Err(Error::shape_detail(
                "softmax_cross_entropy",
                self.shape(),
                labels.shape(),
                "expected [batch, classes] logits and [batch] labels",
            ));
        }
        if labels.dtype() != DType::U32 {
            return Err(Error::invalid(
                "softmax_cross_entropy",
                format!("labels must be u32, got {}", labels.dtype()),
            ));
        }
        let classes = self.shape()[1];
        if !labels.is_realized() {
            return Err(Error::invalid(
                "softmax_cross_entropy",
                "labels must be data (a realized u32 tensor)",
            ));
        }
        if let Some((position, id)) = labels.first_id_at_least(classes)? {
            return Err(Error::IdOutOfRange {
                op: "softmax_cross_entropy",
                id: id as u64,
                position,
                rows: classes,
            });
        }
        Ok(Tensor::op(
            Op::SoftmaxXent,
            vec![self.clone(), labels.clone()],
            vec![],
            self.dtype(),
        ))
    }

    /// Row-wise log-softmax of a 2-D tensor, `x − logsumexp(x)` per row (one
    /// fused kernel, stable). Gradient: g − softmax(x) · Σ g, the sum taken
    /// over each row.
    pub fn log_softmax(&self) -> Result<Tensor> {
        float("log_softmax", self)?;
        if self.rank() != 2 {
            return Err(Error::shape_detail(
                "log_softmax",
                self.shape(),
                &[],
                "expected a 2-D tensor",
            ));
        }
        Ok(Tensor::op(
            Op::LogSoftmax,
            vec![self.clone()],
            self.shape().to_vec(),
            self.dtype(),
        ))
    }

    /// Row-wise softmax of a 2-D tensor, composed as exp ∘ log_softmax; its
    /// gradient is that of the composition: p ⊙ (g − Σ g ⊙ p) per row, with
    /// p the softmax.
    pub fn softmax(&self) -> Result<Tensor> {
        self.log_softmax()?.exp()
    }

    /// Mean binary cross-entropy with logits: the lecture's "is the centre
    /// word a location?" classifier. `targets` (float, in [0, 1]) have the
    /// logits' shape; the result is 0-d, the mean of
    /// `max(x, 0) − x·t + log(1 + e^{−|x|})` (stable for any x). Gradient:
    /// (σ(x) − t)·g/n for the logits, −x·g/n for the targets.
    pub fn logistic_loss(&self, targets: &Tensor) -> Result<Tensor> {
        super::same_float("logistic_loss", self, targets)?;
        super::same_device("logistic_loss", self, targets)?;
        if self.shape() != targets.shape() {
            return Err(Error::shape("logistic_loss", self.shape(), targets.shape()));
        }
        Ok(Tensor::op(
            Op::LogisticLoss,
            vec![self.clone(), targets.clone()],
            vec![],
            self.dtype(),
        ))
    }
}

pub(crate) fn softmax_xent_backward(
    logits: &Tensor,
    labels: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    Ok(vec![Some(softmax_xent_grad(logits, labels, g)), None])
}

/// The fused gradient node (p − y)·g/batch. It records the graph when
/// recording is on (`autograd::grad` with `create_graph`), so it has a
/// backward rule of its own.
fn softmax_xent_grad(logits: &Tensor, labels: &Tensor, g: &Tensor) -> Tensor {
    Tensor::op(
        Op::SoftmaxXentGrad,
        vec![logits.clone(), labels.clone(), g.clone()],
        logits.shape().to_vec(),
        logits.dtype(),
    )
}

/// Second order of softmax cross-entropy: the gradient of
/// d = (p − y)·g/B, p = softmax(x) by rows, for upstream G:
/// ∂x = (g/B)·p ⊙ (G − Σ_c G ⊙ p) (the softmax Jacobian), ∂g = Σ G ⊙ (p − y)/B.
pub(crate) fn softmax_xent_grad_backward(
    logits: &Tensor,
    labels: &Tensor,
    g: &Tensor,
    up: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let batch = logits.shape()[0];
    let p = logits.softmax()?;
    let scale = g.mul_scalar(1.0 / batch.max(1) as f64)?;
    let row = up.mul(&p)?.sum_axis(1)?.reshape(&[batch, 1])?;
    let dx = p.mul(&up.sub(&row)?)?.mul(&scale)?;
    let unit = softmax_xent_grad(logits, labels, &g.constant_like(1.0).reshape(g.shape())?);
    let dg = up.mul(&unit)?.sum()?.reshape(g.shape())?;
    Ok(vec![Some(dx), None, Some(dg)])
}

/// ∂/∂x log_softmax: g − softmax(x)·Σg.
pub(crate) fn log_softmax_backward(out: &Tensor, g: &Tensor) -> Result<Tensor> {
    let rows = out.shape()[0];
    let total = g.sum_axis(1)?.reshape(&[rows, 1])?;
    g.sub(&out.exp()?.mul(&total)?)
}

pub(crate) fn logistic_loss_backward(
    logits: &Tensor,
    targets: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    // The fused node records the graph when recording is on (it has a
    // backward rule of its own).
    let d = Tensor::op(
        Op::LogisticLossGrad,
        vec![logits.clone(), targets.clone(), g.clone()],
        logits.shape().to_vec(),
        logits.dtype(),
    );
    // The targets' gradient is −x/n·g; they are labels in practice, but a
    // soft target can be learned too.
    let dt = logits
        .mul(g)?
        .mul_scalar(-1.0 / logits.numel().max(1) as f64)?;
    Ok(vec![Some(d), Some(dt)])
}

/// Second order of the logistic loss: the gradient of d = (σ(x) − t)·g/n
/// for upstream G: ∂x = G ⊙ σ(x)(1 − σ(x))·g/n, ∂t = −G·g/n,
/// ∂g = Σ G ⊙ (σ(x) − t)/n.
pub(crate) fn logistic_loss_grad_backward(
    logits: &Tensor,
    targets: &Tensor,
    g: &Tensor,
    up: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let scale = g.mul_scalar(1.0 / logits.numel().max(1) as f64)?;
    let s = logits.sigmoid()?;
    let dx = up.mul(&s.mul(&s.rsub_scalar(1.0)?)?)?.mul(&scale)?;
    let dt = up.neg()?.mul(&scale)?;
    let dg = up
        .mul(&s.sub(targets)?)?
        .sum()?
        .mul_scalar(1.0 / logits.numel().max(1) as f64)?
        .reshape(g.shape())?;
    Ok(vec![Some(dx), Some(dt), Some(dg)])
}
