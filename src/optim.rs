//! Optimizers. θ_new = θ_old − α∇J, planned together with the forward and
//! backward pass so that a whole step is one plan (one GPU submission).
//! A parameter whose gradient is a row scatter (an embedding table) gets a
//! sparse update: only the rows the batch touched are written.

use crate::dtype::HostData;
use crate::error::{Error, Result};
use crate::graph::no_grad;
use crate::ir::Op;
use crate::tensor::{Assign, Tensor, realize_step};

/// The rows and ids of a gradient that is a pure row scatter.
fn row_scatter(g: &Tensor) -> Option<(Tensor, Tensor)> {
    let n = g.inputs();
    matches!(g.node().op, Op::ScatterAdd).then(|| (n[0].clone(), n[1].clone()))
}

/// The sparse update `p[ids] −= lr · rows` when `g` is a row scatter.
/// The rate enters as data (`rows · lr` with `lr` a plan input, a multiply
/// the scheduler folds into the in-place kernel), not as the kernel's
/// constant, so that a new rate replays the same plan. `−1 · round(lr ·
/// row)` is `round(−lr · row)`, so the update rounds as it did with the
/// rate as a constant.
fn sparse_update(p: &Tensor, g: &Tensor, lr: f64) -> Result<Option<Assign>> {
    let Some((rows, ids)) = row_scatter(g) else {
        return Ok(None);
    };
    Ok(Some(Assign::Rows {
        target: p.clone(),
        ids,
        rows: rows.mul(&scalar_input(&rows, lr)?)?,
        scale: -1.0,
    }))
}

/// A 0-d leaf holding `v`: a per-step scalar that changes without changing
/// the plan's structure.
fn scalar_input(like: &Tensor, v: f64) -> Result<Tensor> {
    Tensor::from_host(HostData::from_f64(&[v], like.dtype()), &[], &like.device())
}

/// The L2 norm of a gradient, as a 0-d tensor.
pub fn grad_norm(g: &Tensor) -> Result<Tensor> {
    squared_norm(g)?.sqrt()
}

/// Σ g², as a 0-d tensor. A row scatter (an embedding table's gradient)
/// is summed into a table of only the rows its ids touch
/// (`touched_rows`): those rows hold what they hold in the dense gradient
/// (repeated ids summed in id order), and the other rows are zeros, so
/// the sum is the dense one but for the order of its additions, without
/// writing and reading every row of the table. For the window model's
/// 58,622×50 embeddings that was about 5 ms a logged norm.
fn squared_norm(g: &Tensor) -> Result<Tensor> {
    let touched = match row_scatter(g) {
        Some((rows, ids)) => touched_rows(&rows, &ids)?,
        None => None,
    };
    touched.as_ref().unwrap_or(g).square()?.sum()
}

/// `rows` added at `ids` into a table of the distinct ids, in ascending
/// id order (the dense table's nonzero rows, in its order), then zero rows:
/// as many rows as ids, so that the plan's shapes do not change with the
/// number of distinct ids and a cached plan serves every step. None when
/// the ids are not u32 data (a row scatter's always are).
fn touched_rows(rows: &Tensor, ids: &Tensor) -> Result<Option<Tensor>> {
    let HostData::U32(ids_host) = ids.to_host()? else {
        return Ok(None);
    };
    let mut distinct = ids_host.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let at: Vec<u32> = ids_host
        .iter()
        .map(|id| distinct.binary_search(id).unwrap_or(0) as u32)
        .collect();
    let at = Tensor::ids(at, ids.shape(), &ids.device())?;
    Ok(Some(rows.scatter_add_rows(&at, ids_host.len())?))
}

/// The factor min(1, max / ‖g‖) that clips the global norm of `grads` to
/// `max` (a 0-d tensor, computed in the same plan as the update).
fn clip_factor(grads: &[Tensor], max: f64) -> Result<Option<Tensor>> {
    let Some(first) = grads.first() else {
        return Ok(None);
    };
    let mut total = squared_norm(first)?;
    for g in &grads[1..] {
        total = total.add(&squared_norm(g)?)?;
    }
    let norm = total.sqrt()?.add_scalar(1e-12)?;
    // min(1, max/norm) = −max(−1, −max/norm)
    let ratio = norm.recip()?.mul_scalar(max)?;
    Ok(Some(
        ratio.neg()?.maximum(&first.constant_like(-1.0))?.neg()?,
    ))
}

/// Each parameter's gradient, clipped when `clip` is set.
fn gradients(params: &[Tensor], clip: Option<f64>) -> Result<Vec<Option<Tensor>>> {
    let grads: Vec<Option<Tensor>> = params.iter().map(|p| p.grad()).collect();
    let Some(max) = clip else { return Ok(grads) };
    let present: Vec<Tensor> = grads.iter().flatten().cloned().collect();
    let Some(f) = clip_factor(&present, max)? else {
        return Ok(grads);
    };
    grads
        .into_iter()
        .map(|g| match g {
            None => Ok(None),
            // Scaling the rows keeps the sparse update sparse.
            Some(g) => match row_scatter(&g) {
                Some((rows, ids)) => {
                    let table_rows = g.shape()[0];
                    Ok(Some(rows.mul(&f)?.scatter_add_rows(&ids, table_rows)?))
                }
                None => Ok(Some(g.mul(&f)?)),
            },
        })
        .collect()
}

/// Realizes `outputs` together with the `assigns` and clears gradients.
fn finish(params: &[Tensor], outputs: &[&Tensor], assigns: Vec<Assign>) -> Result<()> {
    let outs: Vec<Tensor> = outputs.iter().map(|t| (*t).clone()).collect();
    realize_step(&outs, &assigns)?;
    for p in params {
        p.zero_grad();
    }
    Ok(())
}

/// Minibatch stochastic gradient descent: θ ← θ − lr · ∇θ, for each
/// parameter that has a gradient; embedding tables whose gradient is a row
/// scatter get the sparse update (only the touched rows are written).
pub struct Sgd {
    params: Vec<Tensor>,
    /// The learning rate; may change between steps: dense and sparse
    /// updates read it as a plan input, so a new rate replays the same
    /// plan.
    pub lr: f64,
    /// Clip the global gradient norm (over all parameters together) to this
    /// value before the update; `None` (the default): no clipping.
    pub clip_norm: Option<f64>,
}

impl Sgd {
    /// SGD over `params` (realized leaves that require grad) with learning
    /// rate `lr`, no clipping.
    pub fn new(params: Vec<Tensor>, lr: f64) -> Sgd {
        Sgd {
            params,
            lr,
            clip_norm: None,
        }
    }

    /// Applies the gradients left by `backward` and clears them. Parameters
    /// without a gradient are left as they are.
    pub fn step(&mut self) -> Result<()> {
        self.step_with(&[])
    }

    /// Like `step`, also computing `outputs` (e.g. the loss) in the same plan.
    pub fn step_with(&mut self, outputs: &[&Tensor]) -> Result<()> {
        let assigns = self.assigns()?;
        finish(&self.params, outputs, assigns)
    }

    /// The updates a step would make (for inspecting the step's plan).
    pub fn assigns(&self) -> Result<Vec<Assign>> {
        no_grad(|| {
            let mut assigns = Vec::new();
            let grads = gradients(&self.params, self.clip_norm)?;
            for (p, g) in self.params.iter().zip(grads) {
                let Some(g) = g else { continue };
                if let Some(a) = sparse_update(p, &g, self.lr)? {
                    assigns.push(a);
                } else {
                    let lr = scalar_input(p, self.lr)?;
                    let value = p.sub(&g.mul(&lr)?)?;
                    assigns.push(Assign::Dense {
                        target: p.clone(),
                        value,
                    });
                }
            }
            Ok(assigns)
        })
    }

    /// Clears every parameter's gradient (`step` does this itself).
    pub fn zero_grad(&self) {
        self.params.iter().for_each(|p| p.zero_grad());
    }
    /// The parameters, in the order given to `new`.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }
}

/// Adam (Kingma & Ba 2015) for dense parameters. Row-scatter gradients
/// (embedding tables) get the sparse SGD update at `sparse_lr`, as keeping
/// Adam moments for a whole vocabulary would rewrite every row each step.
pub struct Adam {
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// The step size α.
    pub lr: f64,
    /// The learning rate of the sparse SGD update of row-scatter gradients
    /// (default 0.1).
    pub sparse_lr: f64,
    /// Decay of the first-moment estimate (default 0.9).
    pub beta1: f64,
    /// Decay of the second-moment estimate (default 0.999).
    pub beta2: f64,
    /// Added to the denominator for stability (default 1e-8).
    pub eps: f64,
    /// Clip the global gradient norm (over all parameters together) to this
    /// value before the update; `None` (the default): no clipping.
    pub clip_norm: Option<f64>,
    t: u64,
}

impl Adam {
    /// Adam over `params` with step size `lr` and PyTorch's defaults
    /// (β₁ 0.9, β₂ 0.999, ε 1e-8); the moments start at zero, allocated
    /// on each parameter's device (an error if that fails).
    pub fn new(params: Vec<Tensor>, lr: f64) -> Result<Adam> {
        let zeros = |p: &Tensor| {
            Tensor::from_host(
                HostData::from_f64(&vec![0.0; p.numel()], p.dtype()),
                p.shape(),
                &p.device(),
            )
        };
        let m = params.iter().map(zeros).collect::<Result<_>>()?;
        let v = params.iter().map(zeros).collect::<Result<_>>()?;
        Ok(Adam {
            params,
            m,
            v,
            lr,
            sparse_lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_norm: None,
            t: 0,
        })
    }

    /// Applies one Adam update with the gradients left by `backward` and
    /// clears them; parameters without a gradient are left as they are
    /// (their moments too).
    pub fn step(&mut self) -> Result<()> {
        self.step_with(&[])
    }

    /// Like `step`, also computing `outputs` (e.g. the loss) in the same
    /// plan. With bias correction, in PyTorch's form:
    /// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
    /// θ ← θ − α/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
    pub fn step_with(&mut self, outputs: &[&Tensor]) -> Result<()> {
        self.t += 1;
        let t = self.t as i32;
        // PyTorch's form: θ −= (α / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
        let step_size = self.lr / (1.0 - self.beta1.powi(t));
        let inv_sqrt_bc2 = 1.0 / (1.0 - self.beta2.powi(t)).sqrt();
        let mut assigns = Vec::new();
        no_grad(|| -> Result<()> {
            let grads = gradients(&self.params, self.clip_norm)?;
            for (((p, m), v), g) in self.params.iter().zip(&self.m).zip(&self.v).zip(grads) {
                let Some(g) = g else { continue };
                if let Some(a) = sparse_update(p, &g, self.sparse_lr)? {
                    assigns.push(a);
                    continue;
                }
                let m2 = m
                    .mul_scalar(self.beta1)?
                    .add(&g.mul_scalar(1.0 - self.beta1)?)?;
                let v2 = v
                    .mul_scalar(self.beta2)?
                    .add(&g.square()?.mul_scalar(1.0 - self.beta2)?)?;
                let lr = scalar_input(p, step_size)?;
                let bc2 = scalar_input(p, inv_sqrt_bc2)?;
                let denom = v2.sqrt()?.mul(&bc2)?.add_scalar(self.eps)?;
                let p2 = p.sub(&m2.mul(&lr)?.div(&denom)?)?;
                assigns.push(Assign::Dense {
                    target: m.clone(),
                    value: m2,
                });
                assigns.push(Assign::Dense {
                    target: v.clone(),
                    value: v2,
                });
                assigns.push(Assign::Dense {
                    target: p.clone(),
                    value: p2,
                });
            }
            Ok(())
        })?;
        finish(&self.params, outputs, assigns)
    }

    /// Optimizer state for checkpoints: (step, first moments, second moments).
    pub fn state(&self) -> (u64, &[Tensor], &[Tensor]) {
        (self.t, &self.m, &self.v)
    }

    /// Restores state saved by `state`: one moment per parameter, each of
    /// its parameter's shape (else an error, and nothing changes).
    pub fn set_state(&mut self, t: u64, m: Vec<Tensor>, v: Vec<Tensor>) -> Result<()> {
        if m.len() != self.params.len() || v.len() != self.params.len() {
            return Err(Error::invalid(
                "adam state",
                "moment count differs from parameters",
            ));
        }
        for ((p, a), b) in self.params.iter().zip(&m).zip(&v) {
            if a.shape() != p.shape() || b.shape() != p.shape() {
                return Err(Error::shape("adam state", p.shape(), a.shape()));
            }
        }
        self.t = t;
        self.m = m;
        self.v = v;
        Ok(())
    }

    /// Clears every parameter's gradient (`step` does this itself).
    pub fn zero_grad(&self) {
        self.params.iter().for_each(|p| p.zero_grad());
    }
    /// The parameters, in the order given to `new`.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }
}
