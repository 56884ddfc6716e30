//! Jacobians, vjp, jvp and Hessians (`deltagrad::functional`), checked
//! against the backprop lecture's statements and against each other.

use std::sync::Arc;

use deltagrad::backend::cpu::CpuBackend;
use deltagrad::functional::{hessian, jacobian, jvp, vjp};
use deltagrad::{Device, DeviceKind, Result, Tensor};

fn t64(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

fn vals(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| (((i as u64 + 1) * 2654435761 + seed * 40503) % 1000) as f64 / 500.0 - 1.0)
        .collect()
}

fn close(name: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{name}[{i}]: got {g}, want {w}");
    }
}

#[test]
fn elementwise_tanh_has_a_diagonal_jacobian_of_one_minus_tanh_squared() -> Result<()> {
    let z = [-1.5, -0.2, 0.0, 0.7, 2.5];
    let j = jacobian(|z| z.tanh(), &t64(&z, &[5]))?;
    assert_eq!(j.shape(), &[5, 5]);
    let jv = j.to_vec_f64()?;
    for r in 0..5 {
        for c in 0..5 {
            let want = if r == c {
                1.0 - z[r].tanh().powi(2)
            } else {
                0.0
            };
            // Off the diagonal exactly 0; on it 1 − tanh², as the rule computes.
            assert!(
                (jv[r * 5 + c] - want).abs() <= 1e-15,
                "J[{r}, {c}] = {}, want {want}",
                jv[r * 5 + c]
            );
        }
    }
    Ok(())
}

#[test]
fn jacobian_of_wx_plus_b_with_respect_to_x_is_w() -> Result<()> {
    let (n, m) = (3, 4);
    let wv = vals(n * m, 1);
    let w = t64(&wv, &[n, m]);
    let b = t64(&vals(n, 2), &[n, 1]);
    let x = t64(&vals(m, 3), &[m, 1]);
    // Column vectors, as in the lecture: z = Wx + b, z is [n, 1], x is [m, 1].
    let j = jacobian(|x| w.matmul(x)?.add(&b), &x)?;
    assert_eq!(j.shape(), &[n, 1, m, 1]);
    assert_eq!(j.reshape(&[n, m])?.to_vec_f64()?, wv);
    // ... and with respect to b it is the identity.
    let j = jacobian(|b| w.matmul(&x)?.add(b), &b)?;
    let mut eye = vec![0.0; n * n];
    (0..n).for_each(|i| eye[i * n + i] = 1.0);
    assert_eq!(j.reshape(&[n, n])?.to_vec_f64()?, eye);
    Ok(())
}

#[test]
fn ds_dw_is_delta_x_transposed_by_reshaping_the_jacobian() -> Result<()> {
    // s = uᵀ tanh(Wx + b); δ = u ⊙ (1 − tanh²(z)); ∂s/∂W = δxᵀ.
    let (n, m) = (3, 4);
    let wv = vals(n * m, 4);
    let xv = vals(m, 5);
    let bv = vals(n, 6);
    let uv = vals(n, 7);
    let (x, b, u) = (t64(&xv, &[m, 1]), t64(&bv, &[n, 1]), t64(&uv, &[n, 1]));
    let s = |w: &Tensor| u.transpose()?.matmul(&w.matmul(&x)?.add(&b)?.tanh()?);
    let j = jacobian(s, &t64(&wv, &[n, m]))?;
    // The Jacobian of the [1, 1] output s is [1, 1, n, m]: one row of n·m
    // entries, which reshaped is the n × m gradient.
    assert_eq!(j.shape(), &[1, 1, n, m]);
    let dw = j.reshape(&[n, m])?.to_vec_f64()?;
    let delta: Vec<f64> = (0..n)
        .map(|r| {
            let z = (0..m).map(|c| wv[r * m + c] * xv[c]).sum::<f64>() + bv[r];
            uv[r] * (1.0 - z.tanh().powi(2))
        })
        .collect();
    let want: Vec<f64> = (0..n * m).map(|i| delta[i / m] * xv[i % m]).collect();
    close("∂s/∂W", &dw, &want, 1e-14);
    Ok(())
}

#[test]
fn shape_convention() -> Result<()> {
    let x = t64(&vals(6, 8), &[2, 3]);
    // f: [2, 3] → [4]: J is [4, 2, 3].
    let j = jacobian(|x| x.reshape(&[6])?.narrow(0, 1, 4)?.exp(), &x)?;
    assert_eq!(j.shape(), &[4, 2, 3]);
    // A scalar's Jacobian is its gradient, shaped like x.
    let j = jacobian(|x| x.square()?.sum(), &x)?;
    assert_eq!(j.shape(), &[2, 3]);
    close(
        "∇ Σx²",
        &j.to_vec_f64()?,
        &x.to_vec_f64()?.iter().map(|v| 2.0 * v).collect::<Vec<_>>(),
        1e-15,
    );
    // A Hessian is [x.shape, x.shape].
    let h = hessian(|x| x.square()?.sum(), &x)?;
    assert_eq!(h.shape(), &[2, 3, 2, 3]);
    // x itself was not marked as requiring grad.
    assert!(!x.requires_grad_flag());
    // Something independent of x: zeros.
    let c = t64(&[1.0, 2.0], &[2]);
    let j = jacobian(|_| c.exp(), &x)?;
    assert_eq!(j.shape(), &[2, 2, 3]);
    assert!(j.to_vec_f64()?.iter().all(|&v| v == 0.0));
    Ok(())
}

/// A non-linear map R⁶ → R⁴ with matmuls, reductions and broadcasting.
fn g(x: &Tensor) -> Result<Tensor> {
    let a = t64(&vals(12, 9), &[4, 3]);
    let h = a.matmul(&x.reshape(&[3, 2])?.tanh()?)?; // [4, 2]
    h.sigmoid()?
        .sum_axis(1)?
        .add(&x.reshape(&[6])?.narrow(0, 0, 4)?.square()?)
}

#[test]
fn vjp_and_jvp_agree_with_the_full_jacobian() -> Result<()> {
    let x = t64(&vals(6, 10), &[6]);
    let j = jacobian(g, &x)?.to_vec_f64()?; // [4, 6]
    let v_out = vals(4, 11);
    let v_in = vals(6, 12);
    let (y, vj) = vjp(g, &x, &t64(&v_out, &[4]))?;
    assert_eq!(y.to_vec_f64()?, g(&x)?.to_vec_f64()?);
    let want: Vec<f64> = (0..6)
        .map(|c| (0..4).map(|r| v_out[r] * j[r * 6 + c]).sum())
        .collect();
    close("vᵀJ", &vj.to_vec_f64()?, &want, 1e-14);
    let (_, jv) = jvp(g, &x, &t64(&v_in, &[6]))?;
    let want: Vec<f64> = (0..4)
        .map(|r| (0..6).map(|c| j[r * 6 + c] * v_in[c]).sum())
        .collect();
    close("Jv", &jv.to_vec_f64()?, &want, 1e-14);
    // Wrong shapes are errors naming the op.
    let e = vjp(g, &x, &x).unwrap_err().to_string();
    assert!(
        e.contains("vjp") && e.contains("[4]") && e.contains("[6]"),
        "{e}"
    );
    let e = jvp(g, &x, &t64(&v_out, &[4])).unwrap_err().to_string();
    assert!(e.contains("jvp"), "{e}");
    Ok(())
}

#[test]
fn jvp_matches_finite_differences() -> Result<()> {
    let x = vals(6, 13);
    let v = vals(6, 14);
    let (_, jv) = jvp(g, &t64(&x, &[6]), &t64(&v, &[6]))?;
    let h = 1e-6;
    let at = |s: f64| -> Vec<f64> {
        let p: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + s * h * b).collect();
        g(&t64(&p, &[6])).unwrap().to_vec_f64().unwrap()
    };
    let (p, m) = (at(1.0), at(-1.0));
    let fd: Vec<f64> = p.iter().zip(&m).map(|(a, b)| (a - b) / (2.0 * h)).collect();
    close("Jv vs differences", &jv.to_vec_f64()?, &fd, 1e-8);
    Ok(())
}

#[test]
fn hessian_of_a_quadratic_form_is_a_plus_a_transposed() -> Result<()> {
    let av = vals(16, 15);
    let a = t64(&av, &[4, 4]);
    let h = hessian(
        |x| x.reshape(&[1, 4])?.matmul(&a)?.matmul(&x.reshape(&[4, 1])?),
        &t64(&vals(4, 16), &[4]),
    )?;
    let want: Vec<f64> = (0..16).map(|i| av[i] + av[(i % 4) * 4 + i / 4]).collect();
    close("xᵀAx", &h.to_vec_f64()?, &want, 1e-14);
    Ok(())
}

#[test]
fn a_whole_jacobian_is_one_plan() -> Result<()> {
    // A private device, so that other tests' work does not count.
    let dev = Device::new(Arc::new(CpuBackend::new()), DeviceKind::Cpu);
    let x = Tensor::from_vec(vals(6, 17), &[6])?.to_device(&dev)?;
    x.realize()?;
    let before = dev.backend().counters().submissions;
    let j = jacobian(
        |x| {
            let a = Tensor::from_vec(vals(12, 9), &[4, 3])?.to_device(&dev)?;
            a.matmul(&x.reshape(&[3, 2])?.tanh()?)?
                .sigmoid()?
                .reshape(&[8])
        },
        &x,
    )?;
    assert_eq!(j.shape(), &[8, 6]);
    let after = dev.backend().counters().submissions;
    assert_eq!(after - before, 1, "8 rows, one plan");
    Ok(())
}
