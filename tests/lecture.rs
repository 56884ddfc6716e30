//! The lecture's own examples, with the gradients derived by hand.

use deltagrad::{DType, Device, Result, Tensor};

fn t64(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

#[test]
fn worked_example_plus_distributes_max_routes_times_switches() -> Result<()> {
    // f = (x + y) · max(y, z) at x = 1, y = 2, z = 0.
    let x = t64(&[1.0], &[]).requires_grad();
    let y = t64(&[2.0], &[]).requires_grad();
    let z = t64(&[0.0], &[]).requires_grad();
    let f = x.add(&y)?.mul(&y.maximum(&z)?)?;
    f.backward()?;
    assert_eq!(f.item()?, 6.0);
    assert_eq!(x.grad().unwrap().item()?, 2.0);
    assert_eq!(y.grad().unwrap().item()?, 5.0);
    assert_eq!(z.grad().unwrap().item()?, 0.0);
    Ok(())
}

/// s = uᵀ f(Wx + b), δ = u ⊙ f'(z): ∂s/∂b = δ, ∂s/∂W = δxᵀ, ∂s/∂x = Wᵀδ,
/// ∂s/∂u = h. Vectors are columns here, as in the lecture.
fn check_single_layer(act: &str) -> Result<()> {
    let (n, m) = (3, 4);
    let wv: Vec<f64> = (0..n * m)
        .map(|i| ((i * 7 % 11) as f64 - 5.0) / 10.0)
        .collect();
    let xv = vec![0.3, -0.8, 0.5, 1.1];
    let bv = vec![0.1, -0.2, 0.05];
    let uv = vec![0.7, -1.3, 0.4];
    let w = t64(&wv, &[n, m]).requires_grad();
    let x = t64(&xv, &[m, 1]).requires_grad();
    let b = t64(&bv, &[n, 1]).requires_grad();
    let u = t64(&uv, &[n, 1]).requires_grad();
    let z = w.matmul(&x)?.add(&b)?;
    let h = match act {
        "tanh" => z.tanh()?,
        "logistic" => z.sigmoid()?,
        _ => z.relu()?,
    };
    let s = u.transpose()?.matmul(&h)?.sum()?;
    s.backward()?;

    // By hand.
    let zv: Vec<f64> = (0..n)
        .map(|r| (0..m).map(|c| wv[r * m + c] * xv[c]).sum::<f64>() + bv[r])
        .collect();
    let (hv, dfv): (Vec<f64>, Vec<f64>) = zv
        .iter()
        .map(|&z| match act {
            "tanh" => (z.tanh(), 1.0 - z.tanh().powi(2)),
            "logistic" => {
                let s = 1.0 / (1.0 + (-z).exp());
                (s, s * (1.0 - s))
            }
            _ => (z.max(0.0), if z > 0.0 { 1.0 } else { 0.0 }),
        })
        .unzip();
    let delta: Vec<f64> = (0..n).map(|r| uv[r] * dfv[r]).collect();
    let close = |a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len());
        for (p, q) in a.iter().zip(b) {
            assert!((p - q).abs() < 1e-12, "{act}: {a:?} vs {b:?}");
        }
    };
    close(&b.grad().unwrap().to_vec_f64()?, &delta);
    let dw: Vec<f64> = (0..n * m).map(|i| delta[i / m] * xv[i % m]).collect();
    close(&w.grad().unwrap().to_vec_f64()?, &dw);
    let dx: Vec<f64> = (0..m)
        .map(|c| (0..n).map(|r| wv[r * m + c] * delta[r]).sum())
        .collect();
    close(&x.grad().unwrap().to_vec_f64()?, &dx);
    close(&u.grad().unwrap().to_vec_f64()?, &hv);
    // Gradients have their parameters' shapes.
    assert_eq!(w.grad().unwrap().shape(), w.shape());
    assert_eq!(x.grad().unwrap().shape(), x.shape());
    Ok(())
}

#[test]
fn single_layer_tanh_matches_hand_derivation() -> Result<()> {
    check_single_layer("tanh")
}

#[test]
fn single_layer_logistic_matches_hand_derivation() -> Result<()> {
    check_single_layer("logistic")
}

#[test]
fn single_layer_relu_matches_hand_derivation() -> Result<()> {
    check_single_layer("relu")
}

#[test]
fn node_used_twice_gets_summed_gradient() -> Result<()> {
    let x = t64(&[3.0, -2.0], &[2]).requires_grad();
    x.mul(&x)?.sum()?.backward()?;
    assert_eq!(x.grad().unwrap().to_vec_f64()?, vec![6.0, -4.0]);
    Ok(())
}

#[test]
fn diamond_graph_sums_both_branches() -> Result<()> {
    // a = 2x; b = a·3; c = exp(a); f = b + c  →  df/dx = 2(3 + e^{2x}).
    let x = t64(&[0.5], &[]).requires_grad();
    let a = x.mul_scalar(2.0)?;
    let f = a.mul_scalar(3.0)?.add(&a.exp()?)?;
    f.backward()?;
    let want = 2.0 * (3.0 + 1f64.exp());
    assert!((x.grad().unwrap().item()? - want).abs() < 1e-12);
    Ok(())
}

#[test]
fn gradients_accumulate_across_backward_calls_until_cleared() -> Result<()> {
    let x = t64(&[1.5], &[]).requires_grad();
    x.mul_scalar(2.0)?.backward()?;
    x.mul_scalar(2.0)?.backward()?;
    assert_eq!(x.grad().unwrap().item()?, 4.0);
    x.zero_grad();
    assert!(x.grad().is_none());
    Ok(())
}

#[test]
fn detach_and_no_grad_stop_gradients() -> Result<()> {
    let x = t64(&[2.0], &[]).requires_grad();
    let y = x.mul(&x.detach())?;
    y.backward()?;
    assert_eq!(x.grad().unwrap().item()?, 2.0);
    let z = deltagrad::no_grad(|| x.mul(&x)).unwrap();
    assert!(!z.requires_grad_flag());
    assert!(z.backward().is_err());
    let _ = DType::F64;
    let _ = Device::cpu();
    Ok(())
}
