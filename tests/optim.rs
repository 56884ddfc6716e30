//! Optimizers against their formulas, computed by hand.

use deltagrad::{Adam, Assign, DType, Device, Result, Sgd, Tensor, realize_step};

fn param(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), &[v.len()])
        .unwrap()
        .requires_grad()
}

/// loss = Σ c_i · p_i², so ∂loss/∂p_i = 2 c_i p_i.
fn quadratic(p: &Tensor, c: &[f64]) -> Result<Tensor> {
    let c = Tensor::from_vec(c.to_vec(), &[c.len()])?;
    p.square()?.mul(&c)?.sum()
}

#[test]
fn sgd_step_is_theta_minus_alpha_grad() -> Result<()> {
    let (p0, c) = ([1.0, -2.0, 0.5], [1.0, 0.5, 3.0]);
    let p = param(&p0);
    let mut sgd = Sgd::new(vec![p.clone()], 0.1);
    quadratic(&p, &c)?.backward()?;
    sgd.step()?;
    let got = p.to_vec_f64()?;
    for i in 0..3 {
        let want = p0[i] - 0.1 * 2.0 * c[i] * p0[i];
        assert!((got[i] - want).abs() < 1e-12, "{i}: {} vs {want}", got[i]);
    }
    assert!(p.grad().is_none(), "step clears the gradient");
    Ok(())
}

#[test]
fn adam_two_steps_match_the_paper() -> Result<()> {
    let (p0, c) = ([1.0, -2.0, 0.5], [1.0, 0.5, 3.0]);
    let p = param(&p0);
    let mut adam = Adam::new(vec![p.clone()], 0.01)?;
    let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8, 0.01);
    let mut want = p0.to_vec();
    let (mut m, mut v) = ([0.0; 3], [0.0; 3]);
    for t in 1..=2 {
        quadratic(&p, &c)?.backward()?;
        adam.step()?;
        for i in 0..3 {
            let g = 2.0 * c[i] * want[i];
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let mh = m[i] / (1.0 - b1.powi(t));
            let vh = v[i] / (1.0 - b2.powi(t));
            want[i] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    let got = p.to_vec_f64()?;
    for i in 0..3 {
        assert!(
            (got[i] - want[i]).abs() < 1e-12,
            "{i}: {} vs {}",
            got[i],
            want[i]
        );
    }
    Ok(())
}

#[test]
fn clipping_bounds_the_global_gradient_norm() -> Result<()> {
    let p = param(&[3.0, 4.0]);
    let mut sgd = Sgd::new(vec![p.clone()], 1.0);
    sgd.clip_norm = Some(1.0);
    // ∂/∂p of Σ p² is 2p = (6, 8), norm 10: clipped to (0.6, 0.8).
    p.square()?.sum()?.backward()?;
    sgd.step()?;
    let got = p.to_vec_f64()?;
    assert!(
        (got[0] - 2.4).abs() < 1e-9 && (got[1] - 3.2).abs() < 1e-9,
        "{got:?}"
    );
    Ok(())
}

#[test]
fn assign_replaces_a_parameter_and_checks_its_shape() -> Result<()> {
    let p = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?;
    p.assign(&p.mul_scalar(3.0)?)?;
    assert_eq!(p.to_vec_f32()?, vec![3.0, 6.0]);
    let e = p
        .assign(&Tensor::from_vec(vec![1.0f32; 3], &[3])?)
        .unwrap_err();
    assert!(e.to_string().contains("assign"), "{e}");
    Ok(())
}

#[test]
fn to_dtype_and_to_device_round_trip() -> Result<()> {
    let x = Tensor::from_vec(vec![0.25f32, -1.5], &[2])?;
    let y = x.to_dtype(DType::F64)?;
    assert_eq!(y.dtype(), DType::F64);
    assert_eq!(y.to_vec_f64()?, vec![0.25, -1.5]);
    let z = y.to_device(&Device::cpu())?;
    assert_eq!(z.to_vec_f64()?, vec![0.25, -1.5]);
    Ok(())
}

/// An embedding's gradient (a row scatter, with repeated and unordered
/// ids) has the norm of the dense gradient, though only the touched rows
/// are summed.
#[test]
fn grad_norm_of_a_row_scatter_is_the_dense_norm() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        let dev = Device::cpu();
        let table =
            Tensor::randn(&[1000, 7], 1.0, dtype, &dev, &mut Tensor::rng(5))?.requires_grad();
        let ids: Vec<u32> = vec![17, 3, 999, 17, 0, 3, 17, 512];
        let picked = table.gather_rows(&Tensor::ids(ids.clone(), &[8], &dev)?)?;
        let weights = Tensor::randn(&[8, 7], 1.0, dtype, &dev, &mut Tensor::rng(6))?;
        picked.mul(&weights)?.sum()?.backward()?;
        let g = table.grad().expect("a gradient");
        let got = deltagrad::optim::grad_norm(&g)?.to_vec_f64()?[0];
        // The dense gradient by hand: each weight row added at its id.
        let w = weights.to_vec_f64()?;
        let mut dense = vec![0.0f64; 1000 * 7];
        for (i, &id) in ids.iter().enumerate() {
            for j in 0..7 {
                dense[id as usize * 7 + j] += w[i * 7 + j];
            }
        }
        let want = dense.iter().map(|x| x * x).sum::<f64>().sqrt();
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        assert!((got - want).abs() <= tol * want, "{dtype}: {got} vs {want}");
        // And the same as the norm of the gradient made dense.
        let dense_norm = g.to_dtype(dtype)?.square()?.sum()?.sqrt()?.to_vec_f64()?[0];
        assert!(
            (got - dense_norm).abs() <= tol * want,
            "{got} vs {dense_norm}"
        );
    }
    Ok(())
}

/// Steps whose ids repeat more or less often plan the embedding's norm
/// the same way: the norm of the second and third compiles nothing new.
#[test]
fn grad_norm_of_a_row_scatter_reuses_its_plan() -> Result<()> {
    let dev = Device::cpu();
    let table =
        Tensor::randn(&[500, 4], 1.0, DType::F32, &dev, &mut Tensor::rng(8))?.requires_grad();
    let mut misses = Vec::new();
    // 6, 2 and 5 distinct ids among 6.
    for ids in [
        [1u32, 2, 3, 4, 5, 6],
        [9, 9, 9, 4, 4, 9],
        [0, 499, 7, 7, 30, 1],
    ] {
        let picked = table.gather_rows(&Tensor::ids(ids.to_vec(), &[6], &dev)?)?;
        picked.square()?.sum()?.backward()?;
        let g = table.grad().expect("a gradient");
        deltagrad::optim::grad_norm(&g)?.to_vec_f64()?;
        table.zero_grad();
        misses.push(deltagrad::schedule::thread_stats().misses);
    }
    assert_eq!(misses[1], misses[2], "{misses:?}");
    assert_eq!(misses[0], misses[1], "{misses:?}");
    Ok(())
}

/// Clipping takes the global norm over an embedding's gradient (a row
/// scatter, with repeated ids) and a dense one as the dense formula does.
#[test]
fn clipping_counts_an_embedding_gradient_as_dense() -> Result<()> {
    let dev = Device::cpu();
    let t0: Vec<f64> = (0..40).map(|i| i as f64 * 0.1 - 2.0).collect();
    let table = Tensor::from_vec(t0.clone(), &[10, 4])?.requires_grad();
    let p = param(&[3.0, -4.0]);
    let mut sgd = Sgd::new(vec![table.clone(), p.clone()], 1.0);
    sgd.clip_norm = Some(0.5);
    let ids = [7u32, 2, 7, 7, 0];
    let w: Vec<f64> = (0..20).map(|i| (i % 7) as f64 - 3.0).collect();
    let picked = table.gather_rows(&Tensor::ids(ids.to_vec(), &[5], &dev)?)?;
    let loss = picked
        .mul(&Tensor::from_vec(w.clone(), &[5, 4])?)?
        .sum()?
        .add(&p.square()?.sum()?)?;
    loss.backward()?;
    sgd.step()?;
    // ∂/∂table: row id gets the sum of its weight rows; ∂/∂p = 2p.
    let mut g = vec![0.0f64; 40];
    for (i, &id) in ids.iter().enumerate() {
        for j in 0..4 {
            g[id as usize * 4 + j] += w[i * 4 + j];
        }
    }
    let gp = [6.0, -8.0];
    let norm = (g.iter().chain(&gp).map(|x| x * x).sum::<f64>()).sqrt();
    let f = (0.5 / (norm + 1e-12)).min(1.0);
    let got = table.to_vec_f64()?;
    for i in 0..40 {
        let want = t0[i] - f * g[i];
        assert!(
            (got[i] - want).abs() < 1e-9,
            "table[{i}]: {} vs {want}",
            got[i]
        );
    }
    let got = p.to_vec_f64()?;
    assert!((got[0] - (3.0 - f * 6.0)).abs() < 1e-9, "{got:?}");
    assert!((got[1] - (-4.0 + f * 8.0)).abs() < 1e-9, "{got:?}");
    Ok(())
}

/// A new learning rate replays the step's plan, for the embedding's sparse
/// update as for the dense ones, and each step applies its own rate.
#[test]
fn a_new_learning_rate_replays_the_same_plan() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        let dev = Device::cpu();
        let table = Tensor::randn(&[50, 3], 1.0, dtype, &dev, &mut Tensor::rng(9))?.requires_grad();
        let p = Tensor::randn(&[4], 1.0, dtype, &dev, &mut Tensor::rng(10))?.requires_grad();
        let mut want_table = table.to_vec_f64()?;
        let mut want_p = p.to_vec_f64()?;
        let mut sgd = Sgd::new(vec![table.clone(), p.clone()], 0.0);
        let ids = [4u32, 49, 4, 0];
        let w: Vec<f64> = (0..12).map(|i| (i % 5) as f64 - 2.0).collect();
        let weights = Tensor::from_vec(w.clone(), &[4, 3])?.to_dtype(dtype)?;
        let mut misses = Vec::new();
        for lr in [0.5, 0.3, 0.125, 0.07] {
            let picked = table.gather_rows(&Tensor::ids(ids.to_vec(), &[4], &dev)?)?;
            let loss = picked.mul(&weights)?.sum()?.add(&p.square()?.sum()?)?;
            loss.backward()?;
            sgd.lr = lr;
            sgd.step()?;
            misses.push(deltagrad::schedule::thread_stats().misses);
            // ∂/∂table: each id's row gets its weight row; ∂/∂p = 2p.
            for (i, &id) in ids.iter().enumerate() {
                for j in 0..3 {
                    want_table[id as usize * 3 + j] -= lr * w[i * 3 + j];
                }
            }
            want_p.iter_mut().for_each(|x| *x -= lr * 2.0 * *x);
        }
        assert_eq!(misses[1], misses[3], "{dtype}: {misses:?}");
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        for (got, want) in [(table.to_vec_f64()?, want_table), (p.to_vec_f64()?, want_p)] {
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= tol * (1.0 + w.abs()),
                    "{dtype}: {g} vs {w}"
                );
            }
        }
    }
    Ok(())
}

/// A sparse update whose rows are `x · f` (`f` one element) takes `f` into
/// its in-place kernel only where that rounds as the product would: the
/// fused plan's tables equal the unfused plan's bit for bit, with a scale
/// of −1 (folded) and of 0.3 (not folded), also when the same product is
/// an output of the step or feeds two updates of different scales.
#[test]
fn a_rate_folded_into_the_sparse_update_rounds_as_the_product() -> Result<()> {
    let dev = Device::cpu();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    // (scales of the updates sharing one product, the product an output)
    for (scales, output) in [
        (vec![-1.0], false),
        (vec![0.3], false),
        (vec![-1.0], true),
        (vec![-1.0, 0.3], false),
    ] {
        let mut results = Vec::new();
        for fuse in [true, false] {
            let x = Tensor::randn(&[5, 7], 1.0, DType::F32, &dev, &mut Tensor::rng(12))?;
            let f = Tensor::from_vec(vec![0.37f32], &[])?;
            let rows = x.mul(&f)?;
            let mut tables = Vec::new();
            let mut assigns = Vec::new();
            for (k, &scale) in scales.iter().enumerate() {
                let table = Tensor::randn(
                    &[20, 7],
                    1.0,
                    DType::F32,
                    &dev,
                    &mut Tensor::rng(11 + k as u64),
                )?;
                table.realize()?;
                assigns.push(Assign::Rows {
                    target: table.clone(),
                    ids: Tensor::ids(vec![3, 19, 3, 0, 8], &[5], &dev)?,
                    rows: rows.clone(),
                    scale,
                });
                tables.push(table);
            }
            let outputs = if output { vec![rows.clone()] } else { vec![] };
            deltagrad::schedule::with_fusion(fuse, || realize_step(&outputs, &assigns))?;
            let mut got: Vec<Vec<u32>> = tables
                .iter()
                .map(|t| Ok(bits(&t.to_vec_f32()?)))
                .collect::<Result<_>>()?;
            if output {
                got.push(bits(&rows.to_vec_f32()?));
            }
            results.push(got);
        }
        assert_eq!(results[0], results[1], "scales {scales:?}, output {output}");
    }
    Ok(())
}
