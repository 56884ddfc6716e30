//! Every op, forward and backward, on the wgpu backend against the CPU
//! backend, fused and unfused, one line per case.
//!
//! Tolerance: |gpu − cpu| ≤ 1e-4 · (1 + |cpu|) element-wise. Both run f32; the
//! largest reductions here sum ~130 terms of magnitude ≤ 1, whose f32
//! forward error bound is 130 · 2⁻²⁴ ≈ 8e-6 per backend, and Vulkan lets
//! exp/log/tanh be off by a few ULP; 1e-4 leaves a margin of ~10 while still
//! catching any wrong index, missing term or wrong formula (errors ≥ 1e-2).

mod common;
use common::gpu;
use common::ops::{BINARY, Domain, UNARY};
use deltagrad::schedule::with_fusion;
use deltagrad::{DType, Device, HostData, Result, Tensor};

fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = ((i as u64 + 1) * 2654435761 + seed * 97) % 2000;
            (x as f32 / 1000.0 - 1.0) * 0.95 + 0.0007 * (i % 5) as f32
        })
        .collect()
}

/// Runs `f` on `device` and returns the output and each input's gradient.
fn run(
    f: impl Fn(&[Tensor], &Device) -> Result<Tensor>,
    shapes: &[&[usize]],
    positive: bool,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let inputs: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let mut v = values(s.iter().product(), k as u64 + 1);
            if positive {
                v.iter_mut().for_each(|x| *x = x.abs() + 0.5);
            }
            Ok(Tensor::from_host(HostData::F32(v), s, device)?.requires_grad())
        })
        .collect::<Result<_>>()?;
    let y = f(&inputs, device)?;
    let w = Tensor::from_host(HostData::F32(values(y.numel(), 77)), y.shape(), device)?;
    y.mul(&w)?.sum()?.backward()?;
    let mut out = vec![y.to_vec_f32()?];
    for t in &inputs {
        out.push(match t.grad() {
            Some(g) => g.to_vec_f32()?,
            None => vec![0.0; t.numel()],
        });
    }
    Ok(out)
}

fn check(
    name: &str,
    shapes: &[&[usize]],
    positive: bool,
    f: impl Fn(&[Tensor], &Device) -> Result<Tensor> + Copy,
) {
    let Some(gpu) = gpu() else { return };
    for fuse in [true, false] {
        let (c, g) = with_fusion(fuse, || {
            (
                run(f, shapes, positive, &Device::cpu()).unwrap(),
                run(f, shapes, positive, &gpu).unwrap_or_else(|e| panic!("{name} on gpu: {e}")),
            )
        });
        for (k, (a, b)) in c.iter().zip(&g).enumerate() {
            assert_eq!(a.len(), b.len(), "{name}: output {k} length");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let ok = (x - y).abs() <= 1e-4 * (1.0 + x.abs()) || (x.is_nan() && y.is_nan());
                assert!(
                    ok,
                    "{name} (fusion {fuse}) {}[{i}]: cpu {x} gpu {y}",
                    if k == 0 {
                        "value".into()
                    } else {
                        format!("grad{}", k - 1)
                    }
                );
            }
        }
    }
}

fn ids(v: &[u32], d: &Device) -> Tensor {
    Tensor::ids(v.to_vec(), &[v.len()], d).unwrap()
}

#[test]
fn unary() {
    for &(op, d) in UNARY {
        let positive = d == Domain::Positive;
        check(op.name(), &[&[7, 33]], positive, |t, _| t[0].unary(op));
        check(op.name(), &[&[129]], positive, |t, _| t[0].unary(op));
    }
}

#[test]
fn binary() {
    for &(op, da, db) in BINARY {
        // One flag for both inputs: positive where either needs it.
        let positive = da == Domain::Positive || db == Domain::Positive;
        check(op.name(), &[&[7, 33], &[7, 33]], positive, |t, _| {
            t[0].binary(op, &t[1])
        });
        check(op.name(), &[&[7, 33], &[33]], positive, |t, _| {
            t[0].binary(op, &t[1])
        });
    }
}

#[test]
fn binary_with_broadcasting() {
    check("add", &[&[7, 33], &[7, 33]], false, |t, _| t[0].add(&t[1]));
    check("sub row", &[&[7, 33], &[33]], false, |t, _| t[0].sub(&t[1]));
    check("mul column", &[&[7, 33], &[7, 1]], false, |t, _| {
        t[0].mul(&t[1])
    });
    check("div scalar", &[&[7, 33], &[]], true, |t, _| t[0].div(&t[1]));
    check("max outer", &[&[1, 33], &[7, 1]], false, |t, _| {
        t[0].maximum(&t[1])
    });
    check("rank 3", &[&[3, 7, 5], &[7, 1]], false, |t, _| {
        t[0].add(&t[1])?.tanh()
    });
}

#[test]
fn matmul_and_transposes() {
    check("matmul", &[&[7, 33], &[33, 5]], false, |t, _| {
        t[0].matmul(&t[1])
    });
    check("matmul 1x1", &[&[1, 1], &[1, 1]], false, |t, _| {
        t[0].matmul(&t[1])
    });
    check("matmul Aᵀ", &[&[33, 7], &[33, 9]], false, |t, _| {
        t[0].transpose()?.matmul(&t[1])
    });
    check("matmul Bᵀ", &[&[7, 33], &[9, 33]], false, |t, _| {
        t[0].matmul(&t[1].transpose()?)
    });
    check(
        "linear tanh",
        &[&[129, 33], &[33, 7], &[7]],
        false,
        |t, _| t[0].linear(&t[1], &t[2])?.tanh(),
    );
    check(
        "linear relu",
        &[&[64, 64], &[64, 64], &[64]],
        false,
        |t, _| t[0].linear(&t[1], &t[2])?.relu(),
    );
}

#[test]
fn reductions() {
    check("sum axis 0", &[&[129, 7]], false, |t, _| t[0].sum_axis(0));
    check("sum axis 1", &[&[7, 129]], false, |t, _| t[0].sum_axis(1));
    check("max axis 1", &[&[7, 33]], false, |t, _| t[0].max_axis(1));
    check("mean axis 2", &[&[3, 5, 7]], false, |t, _| {
        t[0].mean_axis(2)
    });
    check("sum all", &[&[33, 33]], false, |t, _| t[0].sum());
    check("max all", &[&[129]], false, |t, _| t[0].max());
}

#[test]
fn movement() {
    check("reshape", &[&[6, 7]], false, |t, _| {
        t[0].reshape(&[7, 6])?.exp()
    });
    check("transpose", &[&[7, 33]], false, |t, _| {
        t[0].transpose()?.tanh()
    });
    check("permute", &[&[2, 3, 5]], false, |t, _| {
        t[0].permute(&[2, 0, 1])?.square()
    });
    check("expand", &[&[1, 7]], false, |t, _| {
        t[0].expand(&[5, 7])?.sigmoid()
    });
}

#[test]
fn gather_scatter_and_losses() {
    check("gather repeated ids", &[&[9, 7]], false, |t, d| {
        t[0].gather_rows(&ids(&[3, 0, 3, 8, 3, 1], d))
    });
    check("scatter_add", &[&[6, 7]], false, |t, d| {
        t[0].scatter_add_rows(&ids(&[2, 2, 0, 4, 2, 1], d), 5)
    });
    check("softmax xent", &[&[7, 5]], false, |t, d| {
        t[0].softmax_cross_entropy(&ids(&[0, 4, 2, 2, 1, 3, 0], d))
    });
    check("log_softmax", &[&[7, 33]], false, |t, _| t[0].log_softmax());
    check("softmax", &[&[7, 5]], false, |t, _| t[0].softmax());
    check("logistic loss", &[&[33], &[33]], true, |t, _| {
        t[0].neg()?.logistic_loss(&t[1].mul_scalar(0.5)?)
    });
}

#[test]
fn window_network_step() {
    check(
        "window net",
        &[&[11, 4], &[20, 8], &[8], &[8, 5], &[5]],
        false,
        |t, d| {
            let words = ids(&[1, 2, 0, 4, 10, 3, 3, 9, 5, 5, 7, 6, 1, 0, 2], d);
            let x = t[0].gather_rows(&words)?.reshape(&[3, 20])?;
            let h = x.linear(&t[1], &t[2])?.tanh()?;
            h.linear(&t[3], &t[4])?
                .softmax_cross_entropy(&ids(&[4, 0, 2], d))?
                .reshape(&[1])
        },
    );
}

#[test]
fn f64_on_the_gpu_is_a_clear_error() {
    let Some(gpu) = gpu() else { return };
    let e = Tensor::from_host(HostData::F64(vec![1.0]), &[1], &gpu).unwrap_err();
    assert!(e.to_string().contains("f64"), "{e}");
    let _ = DType::F64;
}

#[test]
fn gpu_cases_really_run_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    assert!(gpu.is_gpu());
    let before = gpu.backend().counters().launches;
    let x = Tensor::from_host(HostData::F32(vec![0.5; 7]), &[7], &gpu).unwrap();
    let y = x.tanh().unwrap().to_vec_f32().unwrap();
    assert!((y[0] - 0.5f32.tanh()).abs() < 1e-6);
    assert!(gpu.backend().counters().launches > before);
    eprintln!("gpu: {}", gpu.backend().name());
}

#[test]
fn where_with_broadcasting() {
    check("where", &[&[7, 33], &[33]], false, |t, d| {
        let c = t[1].gt(&Tensor::full(&[], 0.0, DType::F32, d))?;
        c.where_cond(&t[0], &t[1].exp()?)
    });
}

/// The GPU's `pow`, `log1p` and `expm1` follow the CPU's `powf`, `ln_1p`
/// and `exp_m1`: special bases and exponents exactly, small arguments to
/// f32 relative precision.
#[test]
fn pow_log1p_expm1_special_values_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let inf = f32::INFINITY;
    let nan = f32::NAN;
    let a = [
        -2.0, -2.0, -2.0, -0.5, 0.0, 0.0, 0.0, -0.0, -0.0, 3.0, nan, 1.0, -1.0, -3.0, 2.0, 0.5,
        -inf, 4.0,
    ];
    let b = [
        3.0, 2.0, 0.5, -3.0, 0.0, -1.0, 2.5, 3.0, -1.0, 0.0, 0.0, nan, inf, -2.0, -inf, inf, 3.0,
        0.5,
    ];
    let run = |d: &Device| -> Vec<f32> {
        let x = Tensor::from_host(HostData::F32(a.to_vec()), &[a.len()], d).unwrap();
        let y = Tensor::from_host(HostData::F32(b.to_vec()), &[b.len()], d).unwrap();
        x.pow(&y).unwrap().to_vec_f32().unwrap()
    };
    let (c, g) = (run(&Device::cpu()), run(&gpu));
    for i in 0..a.len() {
        let want = a[i].powf(b[i]);
        assert!(
            (c[i].is_nan() && want.is_nan()) || c[i] == want,
            "cpu {}^{}",
            a[i],
            b[i]
        );
        let same = (want.is_nan() && g[i].is_nan())
            || (want.is_infinite() && g[i] == want)
            || (want == 0.0 && g[i] == 0.0 && want.is_sign_negative() == g[i].is_sign_negative())
            || (want - g[i]).abs() <= 1e-6 * want.abs();
        assert!(same, "gpu {}^{} = {}, powf says {want}", a[i], b[i], g[i]);
    }
    let xs: Vec<f32> = vec![
        1e-8, -1e-8, 3e-6, -3e-6, 1e-3, -1e-3, 0.1, -0.1, 0.2499, -0.2499, 0.25, 0.7, -0.7, 5.0,
        -5.0, 30.0, -30.0, -0.9999,
    ];
    let run = |d: &Device, f: &dyn Fn(&Tensor) -> Result<Tensor>| -> Vec<f32> {
        let x = Tensor::from_host(HostData::F32(xs.clone()), &[xs.len()], d).unwrap();
        f(&x).unwrap().to_vec_f32().unwrap()
    };
    for (name, f, exact) in [
        (
            "log1p",
            &(|t: &Tensor| t.log1p()) as &dyn Fn(&Tensor) -> Result<Tensor>,
            f64::ln_1p as fn(f64) -> f64,
        ),
        ("expm1", &|t: &Tensor| t.expm1(), f64::exp_m1),
    ] {
        let g = run(&gpu, f);
        for (x, y) in xs.iter().zip(&g) {
            let want = exact(*x as f64);
            let rel = ((*y as f64) - want).abs() / want.abs();
            assert!(
                rel < 2e-6 || (want.is_nan() && y.is_nan()),
                "gpu {name}({x}) = {y}, want {want} (rel {rel:e})"
            );
        }
    }
    // Out of range stays NaN, edges stay exact.
    let edge = |d: &Device| -> Vec<f32> {
        let x = Tensor::from_host(HostData::F32(vec![-2.0, -1.0, inf, nan]), &[4], d).unwrap();
        let mut v = x.log1p().unwrap().to_vec_f32().unwrap();
        let y = Tensor::from_host(HostData::F32(vec![-inf, inf, nan, -100.0]), &[4], d).unwrap();
        v.extend(y.expm1().unwrap().to_vec_f32().unwrap());
        v
    };
    let (c, g) = (edge(&Device::cpu()), edge(&gpu));
    for (i, (x, y)) in c.iter().zip(&g).enumerate() {
        assert!(
            x == y || (x.is_nan() && y.is_nan()),
            "edge {i}: cpu {x} gpu {y}"
        );
    }
    // minimum propagates NaN from either side, like maximum; abs keeps NaN.
    let specials = vec![nan, 1.0, -inf, inf, -0.0, 0.0, 2.0, nan];
    let others = vec![1.0, nan, 0.0, -inf, 0.0, -0.0, 2.0, nan];
    let run = |d: &Device| -> Vec<f32> {
        let x = Tensor::from_host(HostData::F32(specials.clone()), &[8], d).unwrap();
        let y = Tensor::from_host(HostData::F32(others.clone()), &[8], d).unwrap();
        let mut v = x.minimum(&y).unwrap().to_vec_f32().unwrap();
        v.extend(x.abs().unwrap().to_vec_f32().unwrap());
        v.extend(x.clamp(-1.0, 1.0).unwrap().to_vec_f32().unwrap());
        v
    };
    let (c, g) = (run(&Device::cpu()), run(&gpu));
    for (i, (x, y)) in c.iter().zip(&g).enumerate() {
        let same = x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
        assert!(same, "special {i}: cpu {x} gpu {y}");
    }
}

#[test]
fn clamp_pow_and_minimum() {
    check("clamp", &[&[7, 33]], false, |t, _| t[0].clamp(-0.4, 0.3));
    check("pow_scalar negative base", &[&[7, 33]], false, |t, _| {
        t[0].pow_scalar(3.0)
    });
    check("pow_scalar 2", &[&[129]], false, |t, _| {
        t[0].pow_scalar(2.0)
    });
    check("pow_scalar fractional", &[&[129]], true, |t, _| {
        t[0].pow_scalar(-1.5)
    });
    check("minimum outer", &[&[1, 33], &[7, 1]], false, |t, _| {
        t[0].minimum(&t[1])
    });
}

#[test]
fn slices_pads_concat_and_stack() {
    check("narrow", &[&[7, 33]], false, |t, _| t[0].narrow(1, 5, 20));
    check("narrow of pending work", &[&[7, 33]], false, |t, _| {
        t[0].tanh()?.narrow(0, 2, 4)?.exp()
    });
    check("select", &[&[3, 7, 5]], false, |t, _| t[0].select(1, 4));
    check(
        "select then matmul",
        &[&[3, 7, 5], &[5, 9]],
        false,
        |t, _| t[0].select(0, 2)?.matmul(&t[1]),
    );
    check("pad", &[&[3, 7, 5]], false, |t, _| {
        t[0].pad_axis(1, 2, 3)?.sigmoid()
    });
    check("concat", &[&[7, 3], &[7, 30], &[7, 1]], false, |t, _| {
        Tensor::concat(&[&t[0], &t[1].tanh()?, &t[2]], 1)
    });
    check("stack", &[&[5, 3], &[5, 3]], false, |t, _| {
        Tensor::stack(&[&t[0], &t[1]], 1)
    });
}

#[test]
fn min_logsumexp_and_log_softmax_along_an_axis() {
    check("min axis", &[&[7, 33]], false, |t, _| t[0].min_axis(1));
    check("logsumexp axis 0", &[&[33, 7]], false, |t, _| {
        t[0].logsumexp(0)
    });
    check("logsumexp rank 3", &[&[3, 7, 5]], false, |t, _| {
        t[0].logsumexp(1)
    });
    check("log_softmax axis 0", &[&[7, 5]], false, |t, _| {
        t[0].log_softmax_axis(0)
    });
}

#[test]
fn argmax_argmin_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let nan = f32::NAN;
    let mut v = values(7 * 33, 5);
    // Ties and NaNs: the first index wins, a NaN is the extreme.
    v[3] = 0.99;
    v[10] = 0.99;
    v[33 + 4] = nan;
    v[33 + 20] = nan;
    v[2 * 33 + 1] = -0.99;
    v[2 * 33 + 2] = -0.99;
    for axis in [0, 1] {
        for min in [false, true] {
            let on = |d: &Device| -> Vec<u32> {
                let x = Tensor::from_host(HostData::F32(v.clone()), &[7, 33], d).unwrap();
                let a = if min { x.argmin(axis) } else { x.argmax(axis) };
                a.unwrap().to_ids().unwrap()
            };
            assert_eq!(on(&Device::cpu()), on(&gpu), "axis {axis} min {min}");
        }
    }
    // Device-computed ids feed a gather on the GPU.
    let x = Tensor::from_host(HostData::F32(v.clone()), &[7, 33], &gpu).unwrap();
    let table = Tensor::from_host(HostData::F32(values(33 * 2, 9)), &[33, 2], &gpu).unwrap();
    let rows = table.gather_rows(&x.argmax(1).unwrap()).unwrap();
    assert_eq!(rows.shape(), &[7, 2]);
    rows.to_vec_f32().unwrap();
}

#[test]
fn nn_building_blocks() {
    use deltagrad::nn::{cross_entropy, dropout, layer_norm};
    check("layer_norm", &[&[7, 33], &[33], &[33]], false, |t, _| {
        layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)
    });
    check("dropout", &[&[7, 33]], false, |t, _| {
        dropout(&t[0], 0.25, &mut Tensor::rng(3), true)
    });
    check("cross_entropy", &[&[7, 5], &[5]], true, |t, d| {
        cross_entropy(&t[0], &ids(&[0, 4, 2, 2, 1, 3, 0], d), Some(&t[1]), 0.1)
    });
}

#[test]
fn crf_sentence_likelihood() {
    use deltagrad::crf::{CrfParams, nll};
    check(
        "crf nll",
        &[&[3, 5, 4], &[4, 4], &[4], &[4]],
        false,
        |t, _| {
            let p = CrfParams {
                transitions: &t[1],
                start: &t[2],
                end: &t[3],
            };
            let gold = [1, 2, 3, 0, 0, 3, 3, 1, 2, 0, 2, 0, 0, 0, 0];
            nll(&t[0], &[5, 4, 1], &gold, &p)
        },
    );
}
