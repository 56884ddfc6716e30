//! Every op against central differences, in f64 on the CPU backend, fused
//! and unfused.

mod common;
use common::ops::{self, BINARY, Domain, UNARY};
use deltagrad::gradcheck::{GradCheck, check};
use deltagrad::schedule::with_fusion;
use deltagrad::{Result, Tensor};

/// Deterministic values in (-1, 1), away from ReLU's kink and max ties.
fn vals(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let x = ((i as u64 + 1) * 2654435761 + seed * 40503) % 1000;
            (x as f64 / 500.0 - 1.0) * 0.9 + 0.013 * (i % 7) as f64
        })
        .collect()
}

fn input(shape: &[usize], seed: u64) -> (Vec<f64>, Vec<usize>) {
    (vals(shape.iter().product(), seed), shape.to_vec())
}

fn positive(shape: &[usize], seed: u64) -> (Vec<f64>, Vec<usize>) {
    let (v, s) = input(shape, seed);
    (v.iter().map(|x| x.abs() + 0.5).collect(), s)
}

/// Checks `f` fused and unfused; `f` reduces to a scalar with a weighted sum
/// so that every output element matters differently.
fn gc(name: &str, inputs: &[(Vec<f64>, Vec<usize>)], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let weighted = |t: &[Tensor]| -> Result<Tensor> {
        let y = f(t)?;
        let w = Tensor::from_vec(vals(y.numel(), 99), y.shape())?;
        y.mul(&w)?.sum()
    };
    for fuse in [true, false] {
        with_fusion(fuse, || check(weighted, inputs, GradCheck::default()))
            .unwrap_or_else(|e| panic!("{name} (fusion {fuse}): {e}"));
    }
}

fn in_domain(d: Domain, shape: &[usize], seed: u64) -> (Vec<f64>, Vec<usize>) {
    match d {
        Domain::Any => input(shape, seed),
        Domain::Positive => positive(shape, seed),
    }
}

#[test]
fn every_table_op_is_listed() {
    ops::assert_every_table_op_is_listed();
}

#[test]
fn unary_ops() {
    for &(op, d) in UNARY {
        let x = [in_domain(d, &[3, 5], 1)];
        gc(op.name(), &x, |t| t[0].unary(op));
        // Composed with itself: the backward rule's own ops are exercised
        // on values that are not the test's inputs.
        gc(op.name(), &[in_domain(d, &[1], 2)], |t| {
            t[0].unary(op)?.mul(&t[0])
        });
    }
    gc("square", &[input(&[3, 5], 1)], |t| t[0].square());
}

#[test]
fn binary_ops_same_shape() {
    for &(op, da, db) in BINARY {
        let xy = [in_domain(da, &[4, 3], 3), in_domain(db, &[4, 3], 4)];
        gc(op.name(), &xy, |t| t[0].binary(op, &t[1]));
    }
}

#[test]
fn binary_ops_broadcast_both_directions() {
    // [4, 3] with [3] (row), [4, 1] (column), [] (scalar), and [1, 3] with [4, 1].
    for other in [vec![3], vec![4, 1], vec![], vec![1, 3]] {
        let xy = [input(&[4, 3], 5), positive(&other, 6)];
        gc("add bcast", &xy, |t| t[0].add(&t[1]));
        gc("mul bcast", &xy, |t| t[0].mul(&t[1]));
        gc("div bcast", &xy, |t| t[0].div(&t[1]));
        gc("sub bcast reversed", &xy, |t| t[1].sub(&t[0]));
        gc("max bcast", &xy, |t| t[1].maximum(&t[0]));
    }
    let xy = [input(&[1, 3], 7), input(&[4, 1], 8)];
    gc("outer broadcast", &xy, |t| t[0].mul(&t[1]));
    let xyz = [input(&[2, 3, 4], 9), input(&[3, 1], 10)];
    gc("rank-3 broadcast", &xyz, |t| t[0].add(&t[1])?.tanh());
}

#[test]
fn matmul_and_transposes() {
    let ab = [input(&[3, 4], 11), input(&[4, 5], 12)];
    gc("matmul", &ab, |t| t[0].matmul(&t[1]));
    let ab = [input(&[4, 3], 13), input(&[5, 4], 14)];
    gc("matmul Aᵀ Bᵀ", &ab, |t| {
        t[0].transpose()?.matmul(&t[1].transpose()?)
    });
    let xwb = [input(&[5, 4], 15), input(&[4, 3], 16), input(&[3], 17)];
    gc("linear tanh", &xwb, |t| t[0].linear(&t[1], &t[2])?.tanh());
    gc("linear relu", &xwb, |t| t[0].linear(&t[1], &t[2])?.relu());
}

#[test]
fn reductions_every_axis() {
    let x = [input(&[3, 4, 5], 18)];
    for axis in 0..3 {
        gc("sum axis", &x, |t| t[0].sum_axis(axis));
        gc("max axis", &x, |t| t[0].max_axis(axis));
        gc("mean axis", &x, |t| t[0].mean_axis(axis));
    }
    gc("sum all", &x, |t| t[0].sum());
    gc("mean all", &x, |t| t[0].mean());
    gc("max all", &x, |t| t[0].max());
}

#[test]
fn movement_ops() {
    let x = [input(&[3, 4], 19)];
    gc("reshape", &x, |t| t[0].reshape(&[2, 6])?.tanh());
    gc("transpose", &x, |t| t[0].transpose()?.exp());
    gc("expand", &[input(&[1, 4], 20)], |t| {
        t[0].expand(&[3, 4])?.sigmoid()
    });
    let y = [input(&[2, 3, 4], 21)];
    gc("permute", &y, |t| t[0].permute(&[2, 0, 1])?.square());
}

#[test]
fn gather_with_repeated_ids_and_scatter_add() {
    let ids = || Tensor::ids(vec![2, 0, 2, 3, 2], &[5], &deltagrad::Device::cpu()).unwrap();
    let table = [input(&[4, 3], 22)];
    gc("gather", &table, |t| t[0].gather_rows(&ids())?.tanh());
    gc("embedding", &table, |t| {
        let ids2 = Tensor::ids(vec![1, 1, 3, 0], &[2, 2], &deltagrad::Device::cpu())?;
        t[0].embedding(&ids2)
    });
    let rows = [input(&[5, 3], 23)];
    gc("scatter_add", &rows, |t| t[0].scatter_add_rows(&ids(), 4));
}

#[test]
fn losses() {
    let labels = || Tensor::ids(vec![0, 2, 1, 2], &[4], &deltagrad::Device::cpu()).unwrap();
    let logits = [input(&[4, 3], 24)];
    gc("softmax_cross_entropy", &logits, |t| {
        t[0].softmax_cross_entropy(&labels())
    });
    gc("log_softmax", &logits, |t| t[0].log_softmax());
    gc("softmax", &logits, |t| t[0].softmax());
    let xt = [input(&[6], 25), positive(&[6], 26)];
    gc("logistic_loss", &xt, |t| {
        let targets = t[1].mul_scalar(0.5)?;
        t[0].logistic_loss(&targets)
    });
    // Large logits stay finite (the stable formulations).
    let big = [(vec![80.0, -90.0, 3.0, 70.0, -60.0, 1.0], vec![2, 3])];
    let l2 = || Tensor::ids(vec![1, 0], &[2], &deltagrad::Device::cpu()).unwrap();
    gc("softmax_xent large logits", &big, |t| {
        t[0].softmax_cross_entropy(&l2())
    });
}

#[test]
fn window_classifier_graph() {
    // The NER model in miniature: embedding → concat window → tanh layer →
    // softmax cross-entropy.
    let ids = || Tensor::ids(vec![1, 2, 0, 4, 4, 3], &[2, 3], &deltagrad::Device::cpu()).unwrap();
    let labels = || Tensor::ids(vec![1, 0], &[2], &deltagrad::Device::cpu()).unwrap();
    let params = [
        input(&[5, 2], 27),
        input(&[6, 4], 28),
        input(&[4], 29),
        input(&[4, 3], 30),
        input(&[3], 31),
    ];
    gc("window net", &params, |t| {
        let x = t[0].embedding(&ids())?.reshape(&[2, 6])?;
        let h = x.linear(&t[1], &t[2])?.tanh()?;
        let logits = h.linear(&t[3], &t[4])?;
        logits.softmax_cross_entropy(&labels())?.reshape(&[1])
    });
}

#[test]
fn gradcheck_reports_a_wrong_gradient() {
    // A custom op with a deliberately wrong backward must be caught.
    #[derive(Debug)]
    struct Wrong;
    impl deltagrad::CustomOp for Wrong {
        fn name(&self) -> &str {
            "wrong"
        }
        fn output_shape(&self, s: &[Vec<usize>]) -> Result<Vec<usize>> {
            Ok(s[0].clone())
        }
        fn forward(&self, x: &[Vec<f64>], _: &[Vec<usize>]) -> Result<Vec<f64>> {
            Ok(x[0].iter().map(|v| v * v).collect())
        }
        fn backward(
            &self,
            x: &[Vec<f64>],
            _: &[Vec<usize>],
            g: &[f64],
            _: usize,
        ) -> Result<Vec<f64>> {
            Ok(x[0].iter().zip(g).map(|(v, g)| v * g).collect()) // should be 2·v·g
        }
    }
    let op = std::sync::Arc::new(Wrong);
    for fuse in [true, false] {
        let err = with_fusion(fuse, || {
            check(
                |t| Tensor::custom(op.clone(), &[&t[0]])?.sum(),
                &[input(&[3], 32)],
                GradCheck::default(),
            )
        })
        .unwrap_err();
        assert!(err.to_string().contains("input 0"), "fusion {fuse}: {err}");
    }
}

#[test]
fn larger_odd_shapes() {
    // 17×13 through a matmul, a bias and tanh; rank-3 broadcasting against
    // a column and a row; a reduction over the middle axis.
    let x = [input(&[17, 13], 40), input(&[13, 7], 41), input(&[7], 42)];
    gc("17x13 linear tanh", &x, |t| {
        t[0].linear(&t[1], &t[2])?.tanh()
    });
    let y = [
        input(&[3, 17, 13], 43),
        input(&[17, 1], 44),
        positive(&[13], 45),
    ];
    gc("rank-3 broadcast", &y, |t| {
        t[0].mul(&t[1])?.div(&t[2])?.softplus()?.sum_axis(1)
    });
    let z = [input(&[5, 17], 46)];
    gc("log_softmax 5x17", &z, |t| t[0].log_softmax());
}

#[test]
fn custom_op_with_correct_backward_passes() {
    let op = std::sync::Arc::new(common::Cube);
    gc("custom cube", &[input(&[2, 3], 33)], |t| {
        Tensor::custom(op.clone(), &[&t[0]])?.tanh()
    });
}

#[test]
fn where_routes_the_gradient() {
    // cond broadcast over rows; a and b of different shapes.
    let mask: Vec<f64> = (0..3).map(|i| (i % 2) as f64).collect();
    let inputs = [input(&[4, 3], 31), input(&[3], 32)];
    gc("where", &inputs, |t| {
        let c = Tensor::from_vec(mask.clone(), &[3])?;
        c.where_cond(&t[0].tanh()?, &t[1].exp()?)
    });
}

// ---- the ops people build models with ----------------------------------

#[test]
fn new_elementwise_ops_on_odd_shapes_with_broadcasting() {
    // 17×13 against a row, a column and a rank-3 broadcast.
    let a = input(&[17, 13], 40);
    gc("abs", std::slice::from_ref(&a), |t| t[0].abs());
    gc("log1p", std::slice::from_ref(&a), |t| t[0].log1p());
    gc("expm1", std::slice::from_ref(&a), |t| t[0].expm1());
    gc("clamp", std::slice::from_ref(&a), |t| {
        t[0].clamp(-0.3, 0.45)
    });
    for other in [vec![13], vec![17, 1], vec![]] {
        let xy = [a.clone(), input(&other, 41)];
        gc("minimum bcast", &xy, |t| t[0].minimum(&t[1]));
        gc("minimum bcast reversed", &xy, |t| t[1].minimum(&t[0]));
        let xy = [positive(&[17, 13], 42), input(&other, 43)];
        gc("pow bcast", &xy, |t| t[0].pow(&t[1]));
        gc(
            "pow bcast reversed",
            &[xy[1].clone(), positive(&[17, 13], 44)],
            |t| t[1].pow(&t[0]),
        );
    }
    let xyz = [positive(&[3, 5, 4], 45), input(&[5, 1], 46)];
    gc("pow rank 3", &xyz, |t| t[0].pow(&t[1])?.tanh());
    gc(
        "minimum rank 3",
        &[input(&[3, 5, 4], 47), input(&[5, 1], 48)],
        |t| t[0].minimum(&t[1])?.mul(&t[0]),
    );
}

#[test]
fn pow_scalar_including_negative_bases_with_integer_exponents() {
    // Negative and positive bases, none near 0 (x⁻¹ and x⁻² blow up there).
    let (v, s) = input(&[17, 13], 50);
    let x = [(v.iter().map(|x| x + 0.3 * x.signum()).collect(), s)];
    for e in [2.0, 3.0, -1.0, -2.0, 0.0, 1.0] {
        gc("pow_scalar", &x, |t| t[0].pow_scalar(e));
    }
    gc("pow_scalar 2.5", &[positive(&[5, 3], 51)], |t| {
        t[0].pow_scalar(2.5)
    });
    gc("pow_scalar -0.5", &[positive(&[5, 3], 52)], |t| {
        t[0].pow_scalar(-0.5)
    });
}

#[test]
fn pow_special_values_match_powf() -> Result<()> {
    let a = [
        -2.0,
        -2.0,
        -2.0,
        0.0,
        0.0,
        0.0,
        -0.0,
        3.0,
        f64::NAN,
        1.0,
        -1.5,
    ];
    let b = [3.0, 2.0, 0.5, 0.0, -1.0, 2.0, 3.0, 0.0, 0.0, f64::NAN, -2.0];
    let x = Tensor::from_vec(a.to_vec(), &[a.len()])?;
    let y = Tensor::from_vec(b.to_vec(), &[b.len()])?;
    let got = x.pow(&y)?.to_vec_f64()?;
    for (i, ((p, q), r)) in a.iter().zip(&b).zip(&got).enumerate() {
        let want = p.powf(*q);
        assert!(
            want.to_bits() == r.to_bits() || (want.is_nan() && r.is_nan()),
            "{i}: {p}^{q} = {r}, powf says {want}"
        );
    }
    // The gradient rule's special cases: d/da at b = 0 is 0, d/db at a = 0
    // (b ≥ 0) is 0, not NaN.
    let a0 = Tensor::from_vec(vec![0.0f64, 2.0], &[2])?.requires_grad();
    let b0 = Tensor::from_vec(vec![2.0f64, 0.0], &[2])?.requires_grad();
    a0.pow(&b0)?.sum()?.backward()?;
    assert_eq!(a0.grad().unwrap().to_vec_f64()?, vec![0.0, 0.0]);
    assert_eq!(
        b0.grad().unwrap().to_vec_f64()?,
        vec![0.0, 2f64.ln()],
        "d/db of 0^2 and 2^0"
    );
    Ok(())
}

#[test]
fn abs_and_clamp_gradients_at_the_kinks() -> Result<()> {
    // abs: 0 at 0 (PyTorch); clamp: 1 on the bounds, inclusive.
    let x = Tensor::from_vec(vec![-1.0f64, 0.0, 2.0], &[3])?.requires_grad();
    x.abs()?.sum()?.backward()?;
    assert_eq!(x.grad().unwrap().to_vec_f64()?, vec![-1.0, 0.0, 1.0]);
    let x = Tensor::from_vec(vec![-2.0f64, -1.0, 0.0, 1.0, 2.0], &[5])?.requires_grad();
    let y = x.clamp(-1.0, 1.0)?;
    y.sum()?.backward()?;
    assert_eq!(y.to_vec_f64()?, vec![-1.0, -1.0, 0.0, 1.0, 1.0]);
    assert_eq!(
        x.grad().unwrap().to_vec_f64()?,
        vec![0.0, 1.0, 1.0, 1.0, 0.0]
    );
    let e = x.clamp(1.0, -1.0).unwrap_err().to_string();
    assert!(e.contains("clamp") && e.contains("[5]"), "{e}");
    Ok(())
}

#[test]
fn narrow_select_pad_on_every_axis() {
    let x = [input(&[5, 7, 3], 60)];
    for axis in 0..3 {
        let d = [5, 7, 3][axis];
        gc("narrow", &x, |t| t[0].narrow(axis, 1, d - 2));
        gc("narrow fused", &x, |t| {
            t[0].tanh()?.narrow(axis, 1, d - 2)?.exp()
        });
        gc("slice to end", &x, |t| t[0].slice(axis, d - 1, d));
        gc("select", &x, |t| t[0].select(axis, d / 2));
        gc("pad", &x, |t| t[0].pad_axis(axis, 2, 1)?.sigmoid());
        gc("narrow of narrow", &x, |t| {
            t[0].narrow(axis, 1, d - 1)?.narrow(axis, 0, d - 2)
        });
    }
    gc(
        "select then matmul",
        &[input(&[3, 4, 5], 61), input(&[5, 2], 62)],
        |t| t[0].select(1, 2)?.matmul(&t[1]),
    );
    gc(
        "narrow broadcast",
        &[input(&[17, 13], 63), input(&[13], 64)],
        |t| t[0].narrow(0, 4, 9)?.mul(&t[1]),
    );
}

#[test]
fn concat_and_stack() {
    let parts = [input(&[2, 3], 70), input(&[4, 3], 71), input(&[1, 3], 72)];
    gc("concat axis 0", &parts, |t| {
        Tensor::concat(&[&t[0], &t[1], &t[2]], 0)
    });
    let parts = [input(&[3, 2], 73), input(&[3, 5], 74)];
    gc("concat axis 1", &parts, |t| {
        Tensor::concat(&[&t[0], &t[1].tanh()?], 1)?.exp()
    });
    let many: Vec<_> = (0..9).map(|k| input(&[2, 1, 3], 75 + k)).collect();
    gc("concat of nine", &many, |t| {
        Tensor::concat(&t.iter().collect::<Vec<_>>(), 1)
    });
    let same = [input(&[4, 3], 90), input(&[4, 3], 91), input(&[4, 3], 92)];
    for axis in 0..3 {
        gc("stack", &same, |t| {
            Tensor::stack(&[&t[0], &t[1], &t[2].square()?], axis)
        });
    }
    gc("unsqueeze squeeze", &[input(&[3, 4], 93)], |t| {
        t[0].unsqueeze(1)?.sigmoid()?.squeeze(1)
    });
}

#[test]
fn min_logsumexp_and_log_softmax_along_every_axis() {
    let x = [input(&[3, 4, 5], 100)];
    for axis in 0..3 {
        gc("min axis", &x, |t| t[0].min_axis(axis));
        gc("logsumexp", &x, |t| t[0].logsumexp(axis));
        gc("log_softmax axis", &x, |t| t[0].log_softmax_axis(axis));
        gc("softmax axis", &x, |t| t[0].softmax_axis(axis));
    }
    gc("min all", &x, |t| t[0].min());
    gc("logsumexp 17x13", &[input(&[17, 13], 101)], |t| {
        t[0].logsumexp(1)
    });
    // Large values stay finite: the shift by the maximum.
    let big = [(vec![800.0, -900.0, 30.0, 700.0, -600.0, 1.0], vec![2, 3])];
    gc("logsumexp large", &big, |t| t[0].logsumexp(1));
    gc("log_softmax large axis 0", &big, |t| {
        t[0].log_softmax_axis(0)
    });
}

#[test]
fn logsumexp_edge_rows_like_pytorch() -> Result<()> {
    let inf = f64::INFINITY;
    let x = Tensor::from_vec(
        vec![-inf, -inf, 1e30, 1e30, inf, 0.0, f64::NAN, 0.0],
        &[4, 2],
    )?;
    let y = x.logsumexp(1)?.to_vec_f64()?;
    assert_eq!(y[0], -inf, "a row of −∞");
    assert_eq!(y[1], 1e30 + 2f64.ln(), "large but finite");
    assert_eq!(y[2], inf, "+∞");
    assert!(y[3].is_nan(), "NaN");
    let e = Tensor::from_vec(Vec::<f64>::new(), &[2, 0])?.logsumexp(1)?;
    assert_eq!(e.to_vec_f64()?, vec![-inf, -inf], "empty axis");
    Ok(())
}

#[test]
fn argmax_and_argmin_ids_ties_and_nan() -> Result<()> {
    let nan = f64::NAN;
    let x = Tensor::from_vec(
        vec![1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 2.0, 2.0, 5.0, nan, 7.0, nan],
        &[3, 4],
    )?;
    assert_eq!(x.argmax(1)?.to_ids()?, vec![1, 0, 1]);
    assert_eq!(x.argmin(1)?.to_ids()?, vec![3, 0, 1]);
    assert_eq!(x.argmax(0)?.shape(), &[4]);
    assert_eq!(x.argmax(0)?.to_ids()?, vec![2, 2, 2, 2]);
    // Ids from argmax feed a gather (read back once, like any ids).
    let table = Tensor::from_vec((0..8).map(|v| v as f64).collect::<Vec<_>>(), &[4, 2])?;
    let picked = table.gather_rows(&x.argmin(1)?)?;
    assert_eq!(picked.to_vec_f64()?, vec![6.0, 7.0, 0.0, 1.0, 2.0, 3.0]);
    // No gradient flows through ids.
    let w = Tensor::from_vec(vec![1.0f64, 2.0], &[2])?.requires_grad();
    assert!(!w.argmax(0)?.requires_grad_flag());
    let e = Tensor::from_vec(Vec::<f64>::new(), &[2, 0])?
        .argmax(1)
        .unwrap_err();
    assert!(e.to_string().contains("argmax") && e.to_string().contains("[2, 0]"));
    Ok(())
}

#[test]
fn layer_norm_dropout_and_cross_entropy() {
    use deltagrad::nn::{cross_entropy, dropout, layer_norm};
    let xwb = [input(&[5, 7], 110), input(&[7], 111), input(&[7], 112)];
    gc("layer_norm", &xwb, |t| {
        layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)
    });
    gc(
        "layer_norm rank 3 no affine",
        &[input(&[2, 3, 6], 113)],
        |t| layer_norm(&t[0], None, None, 1e-3),
    );
    gc("dropout", &[input(&[6, 5], 114)], |t| {
        let mut rng = Tensor::rng(7);
        dropout(&t[0].tanh()?, 0.3, &mut rng, true)
    });
    let labels = || Tensor::ids(vec![0, 2, 1, 2, 4], &[5], &deltagrad::Device::cpu()).unwrap();
    let lw = [input(&[5, 5], 115), positive(&[5], 116)];
    for eps in [0.0, 0.1] {
        gc("cross_entropy", &lw[..1], |t| {
            cross_entropy(&t[0], &labels(), None, eps)
        });
        gc("cross_entropy weighted", &lw, |t| {
            cross_entropy(&t[0], &labels(), Some(&t[1]), eps)
        });
    }
}

#[test]
fn cross_entropy_matches_the_fused_loss_and_pytorch_formula() -> Result<()> {
    use deltagrad::nn::cross_entropy;
    let cpu = deltagrad::Device::cpu();
    let (b, c) = (4, 3);
    let (lv, _) = input(&[b, c], 120);
    let logits = Tensor::from_vec(lv.clone(), &[b, c])?;
    let y = vec![2u32, 0, 1, 2];
    let labels = Tensor::ids(y.clone(), &[b], &cpu)?;
    let fused = logits.softmax_cross_entropy(&labels)?.item()?;
    let plain = cross_entropy(&logits, &labels, None, 0.0)?.item()?;
    assert!((fused - plain).abs() < 1e-12, "{fused} vs {plain}");
    // By hand, PyTorch's definition with weights and smoothing.
    let w = [0.5, 2.0, 1.25];
    let eps = 0.2;
    let mut picked = 0.0;
    let mut spread = 0.0;
    let mut denom = 0.0;
    for i in 0..b {
        let row = &lv[i * c..(i + 1) * c];
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        let yi = y[i] as usize;
        picked += w[yi] * (lse - row[yi]);
        spread += (0..c).map(|k| w[k] * (lse - row[k])).sum::<f64>();
        denom += w[yi];
    }
    let want = ((1.0 - eps) * picked + eps / c as f64 * spread) / denom;
    let wt = Tensor::from_vec(w.to_vec(), &[c])?;
    let got = cross_entropy(&logits, &labels, Some(&wt), eps)?.item()?;
    assert!((want - got).abs() < 1e-12, "{want} vs {got}");
    Ok(())
}

/// Score of one tag path, by the CRF's definition.
fn path_score(e: &[f64], tr: &[f64], st: &[f64], en: &[f64], k: usize, path: &[usize]) -> f64 {
    let mut s = st[path[0]] + en[path[path.len() - 1]];
    for (t, &y) in path.iter().enumerate() {
        s += e[t * k + y];
        if t > 0 {
            s += tr[path[t - 1] * k + y];
        }
    }
    s
}

/// The CRF's loss against an enumeration of every tag path (3 tags, up to
/// 4 positions: 81 paths), with padding and an empty sentence in the
/// batch; then its gradient against central differences.
#[test]
fn crf_matches_brute_force_enumeration() -> Result<()> {
    use deltagrad::crf::{CrfParams, log_partition, nll};
    let (s, t, k) = (3, 4, 3);
    let lengths = [4usize, 2, 0];
    let gold = [2u32, 0, 1, 1, 1, 2, 0, 0, 0, 0, 0, 0];
    let (ev, _) = input(&[s, t, k], 130);
    let (tv, _) = input(&[k, k], 131);
    let (sv, _) = input(&[k], 132);
    let (nv, _) = input(&[k], 133);
    let e = Tensor::from_vec(ev.clone(), &[s, t, k])?;
    let (tr, st, en) = (
        Tensor::from_vec(tv.clone(), &[k, k])?,
        Tensor::from_vec(sv.clone(), &[k])?,
        Tensor::from_vec(nv.clone(), &[k])?,
    );
    let p = CrfParams {
        transitions: &tr,
        start: &st,
        end: &en,
    };
    let got = nll(&e, &lengths, &gold, &p)?.to_vec_f64()?;
    let z = log_partition(&e, &lengths, &p)?.to_vec_f64()?;
    for (si, &len) in lengths.iter().enumerate() {
        if len == 0 {
            assert_eq!(got[si], 0.0, "an empty sentence costs nothing");
            continue;
        }
        let es = &ev[si * t * k..(si * t + len) * k];
        let mut total = 0.0;
        for code in 0..k.pow(len as u32) {
            let path: Vec<usize> = (0..len).map(|i| code / k.pow(i as u32) % k).collect();
            total += path_score(es, &tv, &sv, &nv, k, &path).exp();
        }
        let g: Vec<usize> = gold[si * t..si * t + len]
            .iter()
            .map(|&y| y as usize)
            .collect();
        let want = total.ln() - path_score(es, &tv, &sv, &nv, k, &g);
        assert!((z[si] - total.ln()).abs() < 1e-12, "sentence {si}: log Z");
        assert!(
            (got[si] - want).abs() < 1e-12,
            "sentence {si}: {} vs {want}",
            got[si]
        );
    }
    gc(
        "crf nll",
        &[
            (ev, vec![s, t, k]),
            (tv, vec![k, k]),
            (sv, vec![k]),
            (nv, vec![k]),
        ],
        |x| {
            let p = CrfParams {
                transitions: &x[1],
                start: &x[2],
                end: &x[3],
            };
            nll(&x[0], &lengths, &gold, &p)
        },
    );
    // Bad input is an error, not a panic.
    assert!(nll(&e, &[5, 1, 0], &gold, &p).is_err(), "length above T");
    let mut bad = gold;
    bad[1] = 3;
    assert!(nll(&e, &lengths, &bad, &p).is_err(), "tag id out of range");
    assert!(nll(&e, &lengths, &gold[1..], &p).is_err(), "gold length");
    Ok(())
}
