//! A user-defined op with its own forward and backward — the lecture's
//! "node type" API — checked by gradcheck and used inside a model.
//!
//! The op is softsign, y = x / (1 + |x|), dy/dx = 1 / (1 + |x|)². It runs
//! on the host in f64 (on any device), and its backward is the local rule
//! [downstream] = [upstream] × [local].
//!
//! Run with `cargo run --example custom_op`.

use std::sync::Arc;

use deltagrad::gradcheck::{GradCheck, check};
use deltagrad::{CustomOp, Result, Tensor};

/// y = x / (1 + |x|).
#[derive(Debug)]
pub struct Softsign;

impl CustomOp for Softsign {
    fn name(&self) -> &str {
        "softsign"
    }
    fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[Vec<f64>], _shapes: &[Vec<usize>]) -> Result<Vec<f64>> {
        Ok(inputs[0].iter().map(|x| x / (1.0 + x.abs())).collect())
    }
    fn backward(
        &self,
        inputs: &[Vec<f64>],
        _shapes: &[Vec<usize>],
        grad_out: &[f64],
        _input: usize,
    ) -> Result<Vec<f64>> {
        Ok(inputs[0]
            .iter()
            .zip(grad_out)
            .map(|(x, g)| g / (1.0 + x.abs()).powi(2))
            .collect())
    }
}

/// Checks the op with gradcheck, alone and inside a small layer, and
/// returns what it prints.
pub fn run() -> Result<String> {
    let mut out = String::new();
    let op: Arc<dyn CustomOp> = Arc::new(Softsign);
    let x = Tensor::from_vec(vec![-2.0f64, -0.5, 0.0, 0.5, 2.0], &[5])?.requires_grad();
    let y = Tensor::custom(op.clone(), &[&x])?;
    y.sum()?.backward()?;
    out.push_str(&format!("x          = {:?}\n", x.to_vec_f64()?));
    out.push_str(&format!("softsign x = {:.4?}\n", y.to_vec_f64()?));
    let g = x.grad().map_or(Ok(vec![]), |g| g.to_vec_f64())?;
    out.push_str(&format!("∂/∂x       = {g:.4?}  (1 / (1 + |x|)²)\n"));

    // gradcheck: central differences in f64 against the op's backward,
    // here inside a layer h = softsign(xW + b) with a weighted sum on top.
    let inputs = [
        (
            (0..12).map(|i| (i as f64 - 5.5) / 4.0).collect(),
            vec![3, 4],
        ),
        (
            (0..8).map(|i| (i as f64 * 0.37).sin()).collect(),
            vec![4, 2],
        ),
        (vec![0.1, -0.2], vec![2]),
    ];
    let worst = check(
        |t| {
            let h = Tensor::custom(op.clone(), &[&t[0].matmul(&t[1])?.add(&t[2])?])?;
            h.mul(&h.tanh()?)?.sum()
        },
        &inputs,
        GradCheck::default(),
    )?;
    for w in &worst {
        out.push_str(&format!(
            "gradcheck input {}: worst |autograd − numeric| = {:.1e}\n",
            w.input, w.abs_err
        ));
    }
    out.push_str("gradcheck passed\n");
    Ok(out)
}

#[allow(dead_code)]
fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}
