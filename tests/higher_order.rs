//! Gradients of gradients (`autograd::grad` with `create_graph`): exact
//! second derivatives of tanh, sigmoid and x·x, and Hessian-vector
//! products of every table op, the fused losses and a small MLP's loss
//! against central differences of gradients, in f64 on the CPU.

mod common;
use std::sync::Arc;

use common::ops::{BINARY, Domain, UNARY};
use deltagrad::autograd::{grad, grad_with};
use deltagrad::schedule::with_fusion;
use deltagrad::{Device, Result, Tensor};

fn vals(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let x = ((i as u64 + 1) * 2654435761 + seed * 40503) % 1000;
            (x as f64 / 500.0 - 1.0) * 0.9 + 0.013 * (i % 7) as f64
        })
        .collect()
}

fn t64(v: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape).unwrap()
}

fn leaf(v: Vec<f64>, shape: &[usize]) -> Tensor {
    t64(v, shape).requires_grad()
}

fn close(name: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{name}[{i}]: got {g}, want {w}"
        );
    }
}

/// ∇f at `x` (a constant tensor of values).
fn gradient(f: &dyn Fn(&Tensor) -> Result<Tensor>, x: &[f64], shape: &[usize]) -> Vec<f64> {
    let xt = leaf(x.to_vec(), shape);
    let y = f(&xt).unwrap();
    grad(&[&y], &[&xt], false).unwrap()[0]
        .clone()
        .map_or(vec![0.0; x.len()], |g| g.to_vec_f64().unwrap())
}

/// Checks H·v from double backward against (∇f(x + hv) − ∇f(x − hv)) / 2h,
/// fused and unfused.
fn hvp_check(name: &str, f: &dyn Fn(&Tensor) -> Result<Tensor>, x: &[f64], shape: &[usize]) {
    let v = vals(x.len(), 77);
    for fuse in [true, false] {
        with_fusion(fuse, || {
            let xt = leaf(x.to_vec(), shape);
            let y = f(&xt).unwrap();
            let g = grad(&[&y], &[&xt], true).unwrap()[0].clone().unwrap();
            let vt = t64(v.clone(), shape);
            let hv = match grad(&[&g.mul(&vt).unwrap().sum().unwrap()], &[&xt], false).unwrap()[0]
                .clone()
            {
                Some(t) => t.to_vec_f64().unwrap(),
                None => vec![0.0; x.len()],
            };
            let h = 1e-5;
            let at = |s: f64| -> Vec<f64> {
                let p: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + s * h * b).collect();
                gradient(f, &p, shape)
            };
            let (plus, minus) = (at(1.0), at(-1.0));
            let fd: Vec<f64> = plus
                .iter()
                .zip(&minus)
                .map(|(p, m)| (p - m) / (2.0 * h))
                .collect();
            close(&format!("{name} (fusion {fuse})"), &hv, &fd, 1e-6);
        });
    }
}

#[test]
fn second_derivatives_of_tanh_sigmoid_and_x_times_x_are_exact() -> Result<()> {
    let xv = vec![-2.0, -0.5, 0.0, 0.3, 1.7];
    let x = leaf(xv.clone(), &[5]);
    let d2 = |y: Tensor| -> Result<Vec<f64>> {
        let g = grad(&[&y.sum()?], &[&x], true)?[0].clone().unwrap();
        // f is element-wise, so d/dxᵢ Σⱼ f'(xⱼ) = f''(xᵢ).
        grad(&[&g.sum()?], &[&x], false)?[0]
            .clone()
            .unwrap()
            .to_vec_f64()
    };
    let want: Vec<f64> = xv
        .iter()
        .map(|z| {
            let t = z.tanh();
            -2.0 * t * (1.0 - t * t)
        })
        .collect();
    close("tanh''", &d2(x.tanh()?)?, &want, 1e-14);
    let want: Vec<f64> = xv
        .iter()
        .map(|z| {
            let s = 1.0 / (1.0 + (-z).exp());
            s * (1.0 - s) * (1.0 - 2.0 * s)
        })
        .collect();
    close("sigmoid''", &d2(x.sigmoid()?)?, &want, 1e-14);
    assert_eq!(d2(x.mul(&x)?)?, vec![2.0; 5], "(x·x)'' = 2");
    close(
        "(x³)''",
        &d2(x.pow_scalar(3.0)?)?,
        &xv.iter().map(|z| 6.0 * z).collect::<Vec<_>>(),
        1e-14,
    );
    // Third derivative of x·x·x through two graph-building passes.
    let y = x.mul(&x)?.mul(&x)?.sum()?;
    let g1 = grad(&[&y], &[&x], true)?[0].clone().unwrap();
    let g2 = grad(&[&g1.sum()?], &[&x], true)?[0].clone().unwrap();
    let g3 = grad(&[&g2.sum()?], &[&x], false)?[0].clone().unwrap();
    assert_eq!(g3.to_vec_f64()?, vec![6.0; 5]);
    Ok(())
}

#[test]
fn every_table_op_has_a_correct_second_derivative() {
    for &(op, d) in UNARY {
        let mut x = vals(7, 3);
        if d == Domain::Positive {
            x.iter_mut().for_each(|v| *v = v.abs() + 0.5);
        }
        // x ⊙ f(x) mixes first and second derivatives.
        hvp_check(op.name(), &|t| t.unary(op)?.mul(t)?.sum(), &x, &[7]);
    }
    for &(op, da, db) in BINARY {
        let mut x = vals(8, 5);
        for (i, v) in x.iter_mut().enumerate() {
            let dom = if i < 4 { da } else { db };
            if dom == Domain::Positive {
                *v = v.abs() + 0.5;
            }
        }
        // Both operands come from one input: mixed partials included.
        hvp_check(
            op.name(),
            &|t| {
                let a = t.narrow(0, 0, 4)?;
                let b = t.narrow(0, 4, 4)?;
                a.binary(op, &b)?.mul(&a.add(&b)?)?.sum()
            },
            &x,
            &[8],
        );
    }
}

#[test]
fn hvp_of_composed_ops() {
    let x = vals(12, 9);
    hvp_check(
        "logsumexp",
        &|t| t.reshape(&[3, 4])?.logsumexp(1)?.square()?.sum(),
        &x,
        &[12],
    );
    hvp_check(
        "log_softmax",
        &|t| t.reshape(&[3, 4])?.log_softmax()?.square()?.sum(),
        &x,
        &[12],
    );
    hvp_check(
        "log_softmax axis 0",
        &|t| t.reshape(&[3, 4])?.log_softmax_axis(0)?.square()?.sum(),
        &x,
        &[12],
    );
    hvp_check(
        "layer_norm",
        &|t| {
            deltagrad::nn::layer_norm(&t.reshape(&[3, 4])?, None, None, 1e-5)?
                .tanh()?
                .sum()
        },
        &x,
        &[12],
    );
    hvp_check(
        "concat and select",
        &|t| {
            let a = t.narrow(0, 0, 5)?;
            let b = t.narrow(0, 5, 7)?;
            let c = Tensor::concat(&[&a.exp()?, &b.tanh()?.mul(&b.sigmoid()?)?], 0)?;
            c.mul(t)?.sum()
        },
        &x,
        &[12],
    );
}

#[test]
fn hvp_through_movement_gather_scatter_and_reductions() {
    let cpu = Device::cpu();
    let ids = || Tensor::ids(vec![3, 0, 3, 1, 2], &[5], &cpu).unwrap();
    let x = vals(12, 13);
    let sq = |t: &Tensor| t.tanh()?.square()?.sum();
    hvp_check(
        "max axis",
        &|t| t.reshape(&[3, 4])?.square()?.max_axis(1)?.exp()?.sum(),
        &x,
        &[12],
    );
    hvp_check(
        "mean axis",
        &|t| sq(&t.reshape(&[3, 4])?.mean_axis(0)?),
        &x,
        &[12],
    );
    hvp_check(
        "permute and expand",
        &|t| {
            let m = t.reshape(&[3, 4])?.transpose()?; // [4, 3]
            let row = t.narrow(0, 0, 3)?.reshape(&[1, 3])?.expand(&[4, 3])?;
            sq(&m.mul(&row)?)
        },
        &x,
        &[12],
    );
    hvp_check(
        "gather",
        &|t| sq(&t.reshape(&[4, 3])?.gather_rows(&ids())?),
        &x,
        &[12],
    );
    hvp_check(
        "scatter_add",
        &|t| {
            sq(&t
                .narrow(0, 0, 10)?
                .reshape(&[5, 2])?
                .scatter_add_rows(&ids(), 4)?)
        },
        &x,
        &[12],
    );
    hvp_check(
        "where",
        &|t| {
            let mask = t64((0..12).map(|i| (i % 3 == 0) as u8 as f64).collect(), &[12]);
            mask.where_cond(&t.tanh()?, &t.exp()?)?.mul(t)?.sum()
        },
        &x,
        &[12],
    );
    hvp_check(
        "pad",
        &|t| sq(&t.reshape(&[3, 4])?.pad_axis(1, 2, 1)?.add_scalar(0.3)?),
        &x,
        &[12],
    );
    hvp_check(
        "stack",
        &|t| {
            sq(&Tensor::stack(
                &[&t.narrow(0, 0, 6)?, &t.narrow(0, 6, 6)?.exp()?],
                1,
            )?)
        },
        &x,
        &[12],
    );
}

#[test]
fn fused_losses_have_second_order_rules() {
    let cpu = Device::cpu();
    let labels = || Tensor::ids(vec![2, 0, 1], &[3], &cpu).unwrap();
    let x = vals(12, 11);
    hvp_check(
        "softmax_cross_entropy",
        &|t| t.reshape(&[3, 4])?.softmax_cross_entropy(&labels()),
        &x,
        &[12],
    );
    hvp_check(
        "softmax_cross_entropy scaled",
        &|t| {
            let l = t.reshape(&[3, 4])?.softmax_cross_entropy(&labels())?;
            l.mul(&l)
        },
        &x,
        &[12],
    );
    hvp_check(
        "cross_entropy weighted, smoothed",
        &|t| {
            let w = t64(vec![0.5, 1.5, 2.0, 1.0], &[4]);
            deltagrad::nn::cross_entropy(&t.reshape(&[3, 4])?, &labels(), Some(&w), 0.1)
        },
        &x,
        &[12],
    );
    let targets = vals(12, 12).iter().map(|v| v.abs()).collect::<Vec<_>>();
    hvp_check(
        "logistic_loss",
        &|t| {
            let l = t.logistic_loss(&t64(targets.clone(), &[12]))?;
            l.mul(&l)
        },
        &x,
        &[12],
    );
    // Soft targets that depend on x too: the rule's ∂t part.
    hvp_check(
        "logistic_loss soft targets",
        &|t| t.logistic_loss(&t.sigmoid()?),
        &x,
        &[12],
    );
}

/// A two-layer MLP's softmax cross-entropy loss as a function of all its
/// parameters packed into one vector.
fn mlp_loss(p: &Tensor) -> Result<Tensor> {
    let cpu = Device::cpu();
    let x = t64(vals(5 * 3, 20), &[5, 3]);
    let y = Tensor::ids(vec![0, 1, 1, 0, 1], &[5], &cpu)?;
    let w1 = p.narrow(0, 0, 12)?.reshape(&[3, 4])?;
    let b1 = p.narrow(0, 12, 4)?;
    let w2 = p.narrow(0, 16, 8)?.reshape(&[4, 2])?;
    let b2 = p.narrow(0, 24, 2)?;
    let h = x.linear(&w1, &b1)?.tanh()?;
    h.linear(&w2, &b2)?.softmax_cross_entropy(&y)
}

#[test]
fn mlp_loss_hessian_vector_products_and_hessian() -> Result<()> {
    let p = vals(26, 21);
    hvp_check("mlp loss", &mlp_loss, &p, &[26]);
    // The full Hessian, column by column against differences of gradients.
    let h = deltagrad::functional::hessian(mlp_loss, &t64(p.clone(), &[26]))?;
    assert_eq!(h.shape(), &[26, 26]);
    let hv = h.to_vec_f64()?;
    let step = 1e-5;
    for j in 0..26 {
        let mut plus = p.clone();
        plus[j] += step;
        let mut minus = p.clone();
        minus[j] -= step;
        let (gp, gm) = (
            gradient(&mlp_loss, &plus, &[26]),
            gradient(&mlp_loss, &minus, &[26]),
        );
        let col: Vec<f64> = (0..26).map(|i| hv[i * 26 + j]).collect();
        let fd: Vec<f64> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * step))
            .collect();
        close(&format!("H[:, {j}]"), &col, &fd, 1e-6);
    }
    // Symmetric, as a Hessian must be.
    for i in 0..26 {
        for j in 0..i {
            assert!((hv[i * 26 + j] - hv[j * 26 + i]).abs() < 1e-12);
        }
    }
    Ok(())
}

#[test]
fn grad_semantics_like_pytorch() -> Result<()> {
    let x = leaf(vec![1.0, 2.0, 3.0], &[3]);
    let w = leaf(vec![0.5], &[1]);
    let unused = leaf(vec![4.0], &[1]);
    let h = x.mul(&w)?;
    let y = h.square()?.sum()?;
    // Gradients with respect to leaves and an intermediate node; an input
    // the output does not depend on gets None; .grad() is untouched.
    let g = grad(&[&y], &[&x, &h, &unused], false)?;
    assert_eq!(g[0].as_ref().unwrap().to_vec_f64()?, vec![0.5, 1.0, 1.5]);
    assert_eq!(g[1].as_ref().unwrap().to_vec_f64()?, vec![1.0, 2.0, 3.0]);
    assert!(g[2].is_none());
    assert!(x.grad().is_none() && w.grad().is_none());
    // Without create_graph the gradients are constants.
    assert!(!g[0].as_ref().unwrap().requires_grad_flag());
    // Several outputs sum; grad_with seeds non-scalar outputs.
    let g = grad(&[&y, &x.sum()?], &[&x], false)?;
    assert_eq!(g[0].as_ref().unwrap().to_vec_f64()?, vec![1.5, 2.0, 2.5]);
    let v = t64(vec![1.0, 0.0, -1.0], &[3]);
    let g = grad_with(&[&h], &[&v], &[&w], false)?;
    assert_eq!(g[0].as_ref().unwrap().to_vec_f64()?, vec![-2.0]);
    // Errors name the problem.
    let e = grad(&[&h], &[&x], false).unwrap_err().to_string();
    assert!(e.contains("grad") && e.contains("[3]"), "{e}");
    let c = t64(vec![1.0], &[1]);
    let e = grad(&[&y], &[&c], false).unwrap_err().to_string();
    assert!(e.contains("does not require grad"), "{e}");
    let e = grad_with(&[&h], &[&w], &[&x], false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("grad") && e.contains("[3]") && e.contains("[1]"),
        "{e}"
    );
    // backward() still accumulates as before.
    y.backward()?;
    assert_eq!(w.grad().unwrap().to_vec_f64()?, vec![14.0]);
    Ok(())
}

#[test]
fn custom_op_second_derivative_is_a_clear_error() -> Result<()> {
    let x = leaf(vec![1.0, 2.0], &[2]);
    let y = Tensor::custom(Arc::new(common::Cube), &[&x])?.sum()?;
    let g = grad(&[&y], &[&x], true)?[0].clone().unwrap();
    assert_eq!(g.to_vec_f64()?, vec![3.0, 12.0]);
    let e = grad(&[&g.sum()?], &[&x], false).unwrap_err().to_string();
    assert!(e.contains("second derivative of custom op cube"), "{e}");
    Ok(())
}
