//! The backprop lecture's two worked examples, with every gradient printed
//! beside the formula derived by hand:
//!
//! 1. f = (x + y)·max(y, z) at x = 1, y = 2, z = 0: `+` distributes the
//!    upstream gradient, `max` routes it, `*` switches it.
//! 2. s = uᵀ tanh(Wx + b): δ = u ⊙ (1 − tanh²(z)) is computed once and
//!    reused for ∂s/∂W = δxᵀ, ∂s/∂b = δ and ∂s/∂x = Wᵀδ.
//!
//! Run with `cargo run --example lecture`.

use deltagrad::{Result, Tensor};

/// Runs both examples and returns what they print.
pub fn run() -> Result<String> {
    let mut out = String::new();
    let mut say = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let scalar = |v: f64| Tensor::from_vec(vec![v], &[]).map(|t| t.requires_grad());

    say("1. f = (x + y) · max(y, z) at x = 1, y = 2, z = 0".into());
    let (x, y, z) = (scalar(1.0)?, scalar(2.0)?, scalar(0.0)?);
    let f = x.add(&y)?.mul(&y.maximum(&z)?)?;
    f.backward()?;
    let grad = |t: &Tensor| -> Result<f64> { t.grad().map_or(Ok(0.0), |g| g.item()) };
    say(format!("   f     = {}", f.item()?));
    say(format!(
        "   ∂f/∂x = {}   by hand: max(y, z) = 2            (+ distributes)",
        grad(&x)?
    ));
    say(format!(
        "   ∂f/∂y = {}   by hand: max(y, z) + (x + y)·1 = 5 (both branches sum; max routes to y)",
        grad(&y)?
    ));
    say(format!(
        "   ∂f/∂z = {}   by hand: (x + y)·0 = 0            (max routes nothing to z)",
        grad(&z)?
    ));

    say(String::new());
    say("2. s = uᵀ tanh(Wx + b), W: 3×4, vectors as columns".into());
    let (n, m) = (3, 4);
    let wv: Vec<f64> = (0..n * m)
        .map(|i| ((i * 7 % 11) as f64 - 5.0) / 10.0)
        .collect();
    let (xv, bv, uv) = (
        vec![0.3, -0.8, 0.5, 1.1],
        vec![0.1, -0.2, 0.05],
        vec![0.7, -1.3, 0.4],
    );
    let w = Tensor::from_vec(wv.clone(), &[n, m])?.requires_grad();
    let x = Tensor::from_vec(xv.clone(), &[m, 1])?.requires_grad();
    let b = Tensor::from_vec(bv.clone(), &[n, 1])?.requires_grad();
    let u = Tensor::from_vec(uv.clone(), &[n, 1])?;
    let z = w.matmul(&x)?.add(&b)?;
    let s = u.transpose()?.matmul(&z.tanh()?)?.sum()?;
    s.backward()?;
    say(format!("   s = {:.6}", s.item()?));

    // By hand.
    let zv: Vec<f64> = (0..n)
        .map(|r| (0..m).map(|c| wv[r * m + c] * xv[c]).sum::<f64>() + bv[r])
        .collect();
    let delta: Vec<f64> = (0..n)
        .map(|r| uv[r] * (1.0 - zv[r].tanh().powi(2)))
        .collect();
    let dw: Vec<f64> = (0..n * m).map(|i| delta[i / m] * xv[i % m]).collect();
    let dx: Vec<f64> = (0..m)
        .map(|c| (0..n).map(|r| wv[r * m + c] * delta[r]).sum())
        .collect();
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:8.5}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut worst = 0.0f64;
    for (name, formula, auto, hand, cols) in [
        ("δ", "u ⊙ (1 − tanh²(z))", b.grad(), &delta, 1),
        ("∂s/∂b", "δ", b.grad(), &delta, 1),
        ("∂s/∂W", "δxᵀ", w.grad(), &dw, m),
        ("∂s/∂x", "Wᵀδ", x.grad(), &dx, 1),
    ] {
        let auto = auto.map_or(Ok(vec![]), |g| g.to_vec_f64())?;
        say(format!("   {name} = {formula}"));
        for r in 0..hand.len() / cols {
            let row = r * cols..(r + 1) * cols;
            say(format!(
                "     autograd [{}]   by hand [{}]",
                fmt(&auto[row.clone()]),
                fmt(&hand[row])
            ));
        }
        for (a, h) in auto.iter().zip(hand.iter()) {
            worst = worst.max((a - h).abs());
        }
    }
    say(format!("   largest |autograd − hand| = {worst:.1e}"));
    Ok(out)
}

#[allow(dead_code)]
fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}
