//! Function transforms on top of reverse-mode autodiff: vector-Jacobian
//! products ([`vjp`]), Jacobian-vector products ([`jvp`]), full Jacobians
//! ([`jacobian`]) and Hessians ([`hessian`]) of functions of one tensor.
//!
//! Shape convention (PyTorch's): the Jacobian of `y = f(x)` has shape
//! `y.shape ++ x.shape`, entry `[i.., j..]` being ∂yᵢ/∂xⱼ; the Hessian of a
//! one-element `f` has shape `x.shape ++ x.shape`. So the Jacobian of a
//! scalar is the gradient, shaped like `x` (∂s/∂W = δxᵀ reads straight off
//! it), and the Jacobian of an element-wise map is diagonal.
//!
//! Each function evaluates `f` on a fresh leaf holding `x`'s value (so `x`
//! itself is not marked as requiring grad), and returns realized-on-read
//! tensors with no graph behind them.

use crate::autograd::{grad, grad_with};
use crate::dtype::HostData;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A leaf holding `x`'s value that requires grad.
fn fresh(op: &'static str, x: &Tensor) -> Result<Tensor> {
    if !x.dtype().is_float() {
        return Err(Error::invalid(
            op,
            format!("needs a float input, got {}", x.dtype()),
        ));
    }
    x.realize()?;
    Ok(x.detach().requires_grad())
}

/// `gx`, or zeros of `like`'s shape where nothing depended on it.
fn or_zeros(gx: Option<Tensor>, like: &Tensor) -> Tensor {
    gx.unwrap_or_else(|| Tensor::zeros(like.shape(), like.dtype(), &like.device()))
}

/// `(f(x), vᵀ·J)`: the vector-Jacobian product of `f` at `x` with a
/// cotangent `v` shaped like `f(x)` — one reverse pass. The result is
/// shaped like `x` (for a one-element `f` and `v = 1`, the gradient).
/// Both results are constants: no gradient flows through them.
pub fn vjp(
    f: impl Fn(&Tensor) -> Result<Tensor>,
    x: &Tensor,
    v: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let xg = fresh("vjp", x)?;
    let y = f(&xg)?;
    if v.shape() != y.shape() {
        return Err(Error::shape_detail(
            "vjp",
            y.shape(),
            v.shape(),
            "v must have the shape of f(x)",
        ));
    }
    let g = if y.requires_grad_flag() {
        grad_with(&[&y], &[v], &[&xg], false)?.remove(0)
    } else {
        None
    };
    Ok((y.detach(), or_zeros(g, &xg)))
}

/// `(f(x), J·v)`: the Jacobian-vector product (forward-mode derivative) of
/// `f` at `x` along a tangent `v` shaped like `x`.
///
/// Computed with the double-vjp trick rather than a second rule table:
/// for a dummy cotangent `u` (shaped like `f(x)`, requiring grad), the
/// reverse pass with `create_graph` gives `g(u) = Jᵀu` as a graph that is
/// linear in `u`; a second reverse pass of `g` with cotangent `v` gives
/// ∂⟨Jᵀu, v⟩/∂u = J·v. It costs about two reverse passes and works for
/// every op whose backward rule is differentiable in its upstream gradient
/// (all of them except custom ops), so no forward-mode rule can drift
/// from its reverse-mode twin. Both results are constants: no gradient
/// flows through them.
pub fn jvp(
    f: impl Fn(&Tensor) -> Result<Tensor>,
    x: &Tensor,
    v: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let xg = fresh("jvp", x)?;
    if v.shape() != xg.shape() {
        return Err(Error::shape_detail(
            "jvp",
            xg.shape(),
            v.shape(),
            "v must have the shape of x",
        ));
    }
    let y = f(&xg)?;
    if !y.requires_grad_flag() {
        let zero = Tensor::zeros(y.shape(), y.dtype(), &y.device());
        return Ok((y.detach(), zero));
    }
    let u = Tensor::zeros(y.shape(), y.dtype(), &y.device()).requires_grad();
    let jt_u = grad_with(&[&y], &[&u], &[&xg], true)?.remove(0);
    let jv = match jt_u {
        Some(g) if g.requires_grad_flag() => grad_with(&[&g], &[v], &[&u], false)?.remove(0),
        _ => None,
    };
    Ok((y.detach(), or_zeros(jv, &y)))
}

/// The Jacobian of `f` at `x`, shaped `f(x).shape ++ x.shape` (reverse
/// mode, one row per element of `f(x)`). The rows' seeds are rows of one
/// identity matrix (views, no copies), and all rows are stacked and
/// realized together: one plan for the whole Jacobian. A constant: no
/// gradient flows through it.
///
/// ```
/// use deltagrad::{Tensor, functional::jacobian};
/// let w = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
/// let x = Tensor::from_vec(vec![0.5f64, -1.0, 2.0], &[3, 1])?;
/// // z = Wx: ∂z/∂x is W (shape [2, 1, 3, 1]).
/// let j = jacobian(|x| w.matmul(x), &x)?;
/// assert_eq!(j.shape(), &[2, 1, 3, 1]);
/// assert_eq!(j.to_vec_f64()?, w.to_vec_f64()?);
/// # Ok::<(), deltagrad::Error>(())
/// ```
pub fn jacobian(f: impl Fn(&Tensor) -> Result<Tensor>, x: &Tensor) -> Result<Tensor> {
    let xg = fresh("jacobian", x)?;
    let y = f(&xg)?;
    let (m, n) = (y.numel(), xg.numel());
    let mut shape = y.shape().to_vec();
    shape.extend_from_slice(xg.shape());
    if m == 0 || n == 0 || !y.requires_grad_flag() {
        let j = Tensor::zeros(&shape, xg.dtype(), &xg.device());
        return Ok(j);
    }
    let mut eye = vec![0.0; m * m];
    for i in 0..m {
        eye[i * m + i] = 1.0;
    }
    let eye = Tensor::from_host(HostData::from_f64(&eye, y.dtype()), &[m, m], &y.device())?;
    let mut rows = Vec::with_capacity(m);
    for i in 0..m {
        let seed = eye.select(0, i)?.reshape(y.shape())?;
        let g = grad_with(&[&y], &[&seed], &[&xg], false)?.remove(0);
        rows.push(or_zeros(g, &xg).reshape(&[n])?);
    }
    let j = Tensor::stack(&rows.iter().collect::<Vec<_>>(), 0)?.reshape(&shape)?;
    j.realize()?;
    Ok(j)
}

/// The Hessian of a one-element `f` at `x`, shaped `x.shape ++ x.shape`:
/// the Jacobian of the gradient, where the gradient is built with
/// `create_graph` so that it can be differentiated again. A constant: no
/// gradient flows through it.
pub fn hessian(f: impl Fn(&Tensor) -> Result<Tensor>, x: &Tensor) -> Result<Tensor> {
    jacobian(
        |z| {
            let s = f(z)?;
            if s.numel() != 1 {
                return Err(Error::invalid(
                    "hessian",
                    format!("f must return one element, got shape {:?}", s.shape()),
                ));
            }
            if !s.requires_grad_flag() {
                return Ok(Tensor::zeros(z.shape(), z.dtype(), &z.device()));
            }
            let g = grad(&[&s], &[z], true)?.remove(0);
            Ok(or_zeros(g, z))
        },
        x,
    )
}
