//! The scheduler: δ reuse, fusion, plan caching; fused and unfused plans agree.

mod common;
use common::{gpu, ner_config};
use deltagrad::ir::{BinaryOp, Expr, Kernel, Plan, SlotKind};
use deltagrad::model::{WindowNet, random_batch};
use deltagrad::plan_for;
use deltagrad::schedule::{self, explain::explain, with_fusion};
use deltagrad::{DType, Device, Result, Sgd, Tensor};
use rand::Rng;

/// The plan of one NER training step (forward, backward, SGD).
fn ner_step_plan() -> Result<Plan> {
    let cfg = ner_config(6);
    let mut rng = Tensor::rng(1);
    let net = WindowNet::new(cfg.clone(), DType::F32, &Device::cpu(), &mut rng)?;
    let batch = random_batch(&cfg, 8, &Device::cpu(), &mut rng)?;
    let loss = net.loss(&batch, None)?;
    loss.backward()?;
    let sgd = Sgd::new(net.params(), 0.1);
    Ok(plan_for(&[loss], &sgd.assigns()?)?.expect("a plan"))
}

/// Whether `e` contains `1 - x·x` (tanh' from the saved output).
fn has_tanh_grad(e: &Expr) -> bool {
    match e {
        Expr::Binary(BinaryOp::Sub, a, b) => {
            matches!(**a, Expr::Const(bits) if f64::from_bits(bits) == 1.0)
                && matches!(&**b, Expr::Binary(BinaryOp::Mul, x, y) if x == y)
                || has_tanh_grad(a)
                || has_tanh_grad(b)
        }
        Expr::Binary(_, a, b) => has_tanh_grad(a) || has_tanh_grad(b),
        Expr::Unary(_, a) => has_tanh_grad(a),
        _ => false,
    }
}

#[test]
fn ner_step_plan_has_eleven_launches() -> Result<()> {
    // gather; matmul+bias+tanh; matmul+bias; loss and its gradient (δ₂) in
    // one launch; Uᵀ product ⊙ (1−h²) (δ₁); ∂x = δ₁W₁ᵀ; ∂W₁+SGD; ∂b₁+SGD;
    // ∂U+SGD; ∂b₂+SGD; sparse row update of L. (A hand-fused sequence: 15.)
    let plan = ner_step_plan()?;
    assert_eq!(plan.launches.len(), 11, "{}", explain(&plan));
    let matmuls = plan
        .launches
        .iter()
        .filter(|l| matches!(l.kernel, Kernel::Matmul { .. }))
        .count();
    assert_eq!(matmuls, 6, "{}", explain(&plan));
    // The loss and its gradient: one launch, two outputs.
    let xent: Vec<&Kernel> = plan
        .launches
        .iter()
        .map(|l| &l.kernel)
        .filter(|k| k.name().starts_with("softmax_xent"))
        .collect();
    assert_eq!(xent.len(), 1, "{}", explain(&plan));
    assert!(
        matches!(xent[0], Kernel::SoftmaxXentWithGrad { .. }) && xent[0].outputs().len() == 2,
        "{}",
        explain(&plan)
    );
    // Each bias gradient is a reduction whose epilogue is the SGD update,
    // written straight to the new parameter (an output).
    let biases: Vec<&Kernel> = plan
        .launches
        .iter()
        .map(|l| &l.kernel)
        .filter(|k| matches!(k, Kernel::Reduce { .. }))
        .collect();
    assert_eq!(biases.len(), 2, "{}", explain(&plan));
    for k in biases {
        let Kernel::Reduce {
            epilogue: Some(e),
            out,
            ..
        } = k
        else {
            panic!("a bias gradient without its update\n{}", explain(&plan));
        };
        assert!(
            matches!(e.expr, Expr::Binary(BinaryOp::Sub, _, _)),
            "{}",
            e.expr
        );
        assert!(matches!(plan.slots[*out].kind, SlotKind::Output(_)));
    }
    Ok(())
}

#[test]
fn unfused_plan_runs_one_launch_per_primitive_op() -> Result<()> {
    let plan = with_fusion(false, ner_step_plan)?;
    for l in &plan.launches {
        let one_op = match &l.kernel {
            Kernel::Matmul { epilogue, .. } | Kernel::Reduce { epilogue, .. } => epilogue.is_none(),
            Kernel::Elementwise { expr, .. } => expr.op_count() <= 1,
            Kernel::SoftmaxXentWithGrad { .. } => false,
            _ => true,
        };
        assert!(one_op && l.fused.len() <= 1, "{}", explain(&plan));
    }
    // 26, and the multiply of the word vectors' gradient rows by the
    // learning rate, which the fused plan folds into the sparse update.
    assert_eq!(plan.launches.len(), 27, "{}", explain(&plan));
    Ok(())
}

#[test]
fn delta_is_produced_once_by_a_fused_matmul_and_read_three_times() -> Result<()> {
    let plan = ner_step_plan()?;
    let producers: Vec<usize> = plan
        .launches
        .iter()
        .enumerate()
        .filter(|(_, l)| match &l.kernel {
            Kernel::Matmul {
                epilogue: Some(e), ..
            } => has_tanh_grad(&e.expr),
            Kernel::Elementwise { expr, .. } => has_tanh_grad(expr),
            _ => false,
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        producers.len(),
        1,
        "δ₁ computed {} times\n{}",
        producers.len(),
        explain(&plan)
    );
    let l = &plan.launches[producers[0]];
    assert!(
        matches!(l.kernel, Kernel::Matmul { .. }),
        "δ₁ not fused into a matmul"
    );
    let delta = l.kernel.out();
    let readers: Vec<&str> = plan
        .launches
        .iter()
        .filter(|l| l.kernel.reads().contains(&delta))
        .map(|l| l.kernel.name())
        .collect();
    // ∂W₁ = xᵀδ₁ (matmul), ∂b₁ = Σδ₁ (reduce), ∂x = δ₁W₁ᵀ (matmul).
    let mut sorted = readers.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["matmul", "matmul", "reduce"],
        "{}",
        explain(&plan)
    );
    // δ₂, the loss gradient, comes from the loss's own launch (its second
    // output) and is read by ∂U = hᵀδ₂, ∂b₂ = Σδ₂ and δ₂Uᵀ.
    let (at, delta2) = plan
        .launches
        .iter()
        .enumerate()
        .find_map(|(i, l)| match l.kernel {
            Kernel::SoftmaxXentWithGrad { grad_out, .. } => Some((i, grad_out)),
            _ => None,
        })
        .expect("a fused loss launch");
    let mut readers: Vec<(usize, &str)> = plan
        .launches
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kernel.reads().contains(&delta2))
        .map(|(i, l)| (i, l.kernel.name()))
        .collect();
    assert!(readers.iter().all(|(i, _)| *i > at), "{}", explain(&plan));
    readers.sort_by_key(|r| r.1);
    let names: Vec<&str> = readers.iter().map(|r| r.1).collect();
    assert_eq!(
        names,
        vec!["matmul", "matmul", "reduce"],
        "{}",
        explain(&plan)
    );
    Ok(())
}

#[test]
fn forward_matmul_fuses_bias_and_activation() -> Result<()> {
    let plan = ner_step_plan()?;
    let first_matmul = plan
        .launches
        .iter()
        .find(|l| matches!(l.kernel, Kernel::Matmul { .. }))
        .unwrap();
    let Kernel::Matmul {
        epilogue: Some(e), ..
    } = &first_matmul.kernel
    else {
        panic!("first matmul has no epilogue\n{}", explain(&plan));
    };
    assert!(matches!(
        e.expr,
        Expr::Unary(deltagrad::ir::UnaryOp::Tanh, _)
    ));
    Ok(())
}

/// Trains `steps` SGD steps in f64 and returns the parameters' values.
fn train(fuse: bool, steps: usize) -> Result<Vec<Vec<f64>>> {
    with_fusion(fuse, || {
        let cfg = ner_config(7);
        let mut rng = Tensor::rng(5);
        let net = WindowNet::new(cfg.clone(), DType::F64, &Device::cpu(), &mut rng)?;
        let mut sgd = Sgd::new(net.params(), 0.3);
        for _ in 0..steps {
            let batch = random_batch(&cfg, 6, &Device::cpu(), &mut rng)?;
            let loss = net.loss(&batch, None)?;
            loss.backward()?;
            sgd.step_with(&[&loss])?;
            assert!(loss.item()?.is_finite());
        }
        net.params().iter().map(|p| p.to_vec_f64()).collect()
    })
}

#[test]
fn fused_and_unfused_training_agree() -> Result<()> {
    let a = train(true, 4)?;
    let b = train(false, 4)?;
    for (pa, pb) in a.iter().zip(&b) {
        for (x, y) in pa.iter().zip(pb) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }
    Ok(())
}

#[test]
fn unfused_plan_has_more_launches() -> Result<()> {
    let fused = ner_step_plan()?.launches.len();
    let unfused = with_fusion(false, ner_step_plan)?.launches.len();
    assert!(unfused > fused + 8, "fused {fused}, unfused {unfused}");
    Ok(())
}

#[test]
fn second_step_replays_the_cached_plan() -> Result<()> {
    let cfg = ner_config(9);
    let mut rng = Tensor::rng(2);
    let net = WindowNet::new(cfg.clone(), DType::F32, &Device::cpu(), &mut rng)?;
    let mut sgd = Sgd::new(net.params(), 0.1);
    let mut step = |rng: &mut rand::rngs::StdRng| -> Result<()> {
        let batch = random_batch(&cfg, 8, &Device::cpu(), rng)?;
        let loss = net.loss(&batch, None)?;
        loss.backward()?;
        sgd.step_with(&[&loss])
    };
    step(&mut rng)?;
    // This thread's lookups only: tests in other threads share the cache.
    let before = schedule::thread_stats();
    step(&mut rng)?;
    let after = schedule::thread_stats();
    assert_eq!(after.hits - before.hits, 1, "{before:?} → {after:?}");
    assert_eq!(after.misses, before.misses, "{before:?} → {after:?}");
    Ok(())
}

/// A random expression graph over three inputs; returns a scalar.
fn random_graph(seed: u64, x: &[Tensor]) -> Result<Tensor> {
    let mut rng = Tensor::rng(seed);
    let mut pool: Vec<Tensor> = x.to_vec();
    for _ in 0..12 {
        let a = pool[rng.random_range(0..pool.len())].clone();
        let b = pool[rng.random_range(0..pool.len())].clone();
        let t = match rng.random_range(0..10) {
            0 => a.add(&b)?,
            1 => a.mul(&b)?,
            2 => a.tanh()?,
            3 => a.sigmoid()?,
            4 => a.sub(&b)?.relu()?,
            5 => a.maximum(&b)?,
            6 => a.matmul(&b.transpose()?)?.tanh()?.matmul(&b)?,
            7 => a.sum_axis(1)?.reshape(&[4, 1])?.mul(&b)?,
            8 => a.transpose()?.exp()?.transpose()?.mul_scalar(0.3)?,
            _ => a.add(&b.mean_axis(0)?)?,
        };
        pool.push(t);
    }
    let mut total = pool[pool.len() - 1].sum()?;
    for t in &pool[3..pool.len() - 1] {
        total = total.add(&t.mean()?.mul_scalar(0.1)?)?;
    }
    Ok(total)
}

#[test]
fn random_graphs_fused_and_unfused_agree_values_and_gradients() -> Result<()> {
    for seed in 0..20 {
        let run = |fuse: bool| -> Result<Vec<Vec<f64>>> {
            with_fusion(fuse, || {
                let mut rng = Tensor::rng(100 + seed);
                let x: Vec<Tensor> = (0..3)
                    .map(|_| {
                        Ok(
                            Tensor::randn(&[4, 3], 0.7, DType::F64, &Device::cpu(), &mut rng)?
                                .requires_grad(),
                        )
                    })
                    .collect::<Result<_>>()?;
                let y = random_graph(seed, &x)?;
                y.backward()?;
                let mut out = vec![vec![y.item()?]];
                for t in &x {
                    out.push(match t.grad() {
                        Some(g) => g.to_vec_f64()?,
                        None => vec![0.0; 12],
                    });
                }
                Ok(out)
            })
        };
        let (a, b) = (run(true)?, run(false)?);
        for (va, vb) in a.iter().zip(&b) {
            for (p, q) in va.iter().zip(vb) {
                assert!(
                    (p - q).abs() <= 1e-12 * (1.0 + p.abs()),
                    "seed {seed}: {p} vs {q}"
                );
            }
        }
    }
    Ok(())
}

/// Trains `steps` SGD steps in f32 on `device`; returns the parameters.
fn train_on(device: &Device, fuse: bool, steps: usize) -> Result<Vec<Vec<f32>>> {
    with_fusion(fuse, || {
        let cfg = ner_config(10);
        let mut rng = Tensor::rng(21);
        let net = WindowNet::new(cfg.clone(), DType::F32, device, &mut rng)?;
        let mut sgd = Sgd::new(net.params(), 0.3);
        for _ in 0..steps {
            let batch = random_batch(&cfg, 12, device, &mut rng)?;
            let loss = net.loss(&batch, None)?;
            loss.backward()?;
            sgd.step_with(&[&loss])?;
        }
        net.params().iter().map(|p| p.to_vec_f32()).collect()
    })
}

#[test]
fn gpu_fused_and_unfused_training_match_the_cpu() -> Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let cpu = train_on(&Device::cpu(), true, 5)?;
    for fuse in [true, false] {
        let g = train_on(&gpu, fuse, 5)?;
        for (pc, pg) in cpu.iter().zip(&g) {
            for (x, y) in pc.iter().zip(pg) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
                    "fusion {fuse}: cpu {x} gpu {y}"
                );
            }
        }
    }
    // And the same run twice on the GPU is bit-identical.
    assert_eq!(train_on(&gpu, true, 5)?, train_on(&gpu, true, 5)?);
    Ok(())
}

#[test]
fn fused_kernels_stay_within_the_binding_limit() -> Result<()> {
    // Ten inputs summed: one kernel cannot read them all (WebGPU allows 8
    // storage buffers per stage), so the chain is split.
    let xs: Vec<Tensor> = (0..10)
        .map(|i| Tensor::from_vec(vec![i as f32; 6], &[2, 3]))
        .collect::<Result<_>>()?;
    let mut total = xs[0].clone();
    for x in &xs[1..] {
        total = total.add(x)?.tanh()?;
    }
    let plan = plan_for(std::slice::from_ref(&total), &[])?.expect("a plan");
    for l in &plan.launches {
        assert!(l.kernel.reads().len() <= 6, "{}", explain(&plan));
    }
    assert!(plan.launches.len() >= 2);
    let want = with_fusion(false, || total.detach().to_vec_f32())?;
    assert_eq!(total.to_vec_f32()?, want);
    Ok(())
}

/// A reduction absorbs its element-wise consumer when every view the
/// consumer reads flattens to [outer, inner]; otherwise the two stay
/// separate launches. Either way the values are the unfused plan's, on the
/// CPU (f64) and on the GPU (f32).
#[test]
fn reductions_take_their_consumer_as_epilogue_when_its_views_flatten() -> Result<()> {
    let mut devices = vec![(Device::cpu(), DType::F64)];
    devices.extend(gpu().map(|g| (g, DType::F32)));
    for (device, dtype) in devices {
        let mut rng = Tensor::rng(7);
        let mut randn = |shape: &[usize]| Tensor::randn(shape, 1.0, dtype, &device, &mut rng);
        let x = randn(&[2, 3, 4, 5])?;
        let dense = randn(&[2, 4, 5])?;
        // [2, 4, 5] read through strides (20, 1, 4): the last two
        // dimensions do not flatten into one stride.
        let swapped = randn(&[2, 5, 4])?.permute(&[0, 2, 1])?;
        for (other, launches) in [(&dense, 1), (&swapped, 2)] {
            let y = x.sum_axis(1)?.mul_scalar(0.5)?.sub(other)?;
            let plan = plan_for(std::slice::from_ref(&y), &[])?.expect("a plan");
            assert_eq!(plan.launches.len(), launches, "{}", explain(&plan));
            let fused = y.to_vec_f64()?;
            let unfused = with_fusion(false, || {
                x.sum_axis(1)?.mul_scalar(0.5)?.sub(other)?.to_vec_f64()
            })?;
            assert_eq!(fused, unfused, "{device:?}");
        }
    }
    Ok(())
}
