//! Engine bugs found by comparing random graphs with a reference, each
//! pinned on both backends, fused and unfused.

mod common;
use std::sync::Arc;

use common::gpu;
use deltagrad::backend::wgpu::{WgpuBackend, WgpuOptions};
use deltagrad::schedule::with_fusion;
use deltagrad::{DType, Device, DeviceKind, HostData, Result, Tensor};

fn devices() -> Vec<Device> {
    let mut d = vec![Device::cpu()];
    d.extend(gpu());
    d
}

fn dtype_for(d: &Device) -> DType {
    if d.is_gpu() { DType::F32 } else { DType::F64 }
}

/// A one-element constant realized as an output, reached by a gradient
/// unchanged, or read with `item`: the scheduler used to hand back the
/// shared constant input instead of an output slot ("output 0 never
/// written" on the CPU, "output 0 has no slot" on wgpu).
#[test]
fn one_element_constants_can_be_outputs() -> Result<()> {
    for d in devices() {
        let dt = dtype_for(&d);
        for fuse in [true, false] {
            with_fusion(fuse, || -> Result<()> {
                let ctx = format!("{d} fusion {fuse}");
                assert_eq!(Tensor::ones(&[], dt, &d).item()?, 1.0, "{ctx}");
                assert_eq!(Tensor::full(&[1, 1], 3.0, dt, &d).to_vec_f64()?, vec![3.0]);
                assert_eq!(
                    Tensor::full(&[2, 3], -2.0, dt, &d).to_vec_f64()?,
                    vec![-2.0; 6]
                );
                // sum of a [1] parameter: its gradient is the constant 1.
                let x =
                    Tensor::from_host(HostData::from_f64(&[0.25], dt), &[1], &d)?.requires_grad();
                x.sum()?.backward()?;
                assert_eq!(x.grad().unwrap().to_vec_f64()?, vec![1.0], "{ctx}");
                // A learnable scalar added to a loss.
                let b = Tensor::scalar(0.5, dt, &d)?.requires_grad();
                let w = Tensor::from_host(HostData::from_f64(&[1.0, 2.0], dt), &[2], &d)?
                    .requires_grad();
                w.mul(&w)?.sum()?.add(&b)?.backward()?;
                assert_eq!(b.grad().unwrap().item()?, 1.0, "{ctx}");
                assert_eq!(w.grad().unwrap().to_vec_f64()?, vec![2.0, 4.0], "{ctx}");
                // Two outputs, one of them the constant.
                let c = Tensor::full(&[1], 7.0, dt, &d);
                let y = x.add_scalar(1.0)?;
                deltagrad::realize(&[c.clone(), y.clone()])?;
                assert_eq!(c.to_vec_f64()?, vec![7.0], "{ctx}");
                assert_eq!(y.to_vec_f64()?, vec![1.25], "{ctx}");
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// log-softmax of `row` in f64, computed as (x − m) − log Σ exp(x − m).
fn log_softmax_f64(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
    row.iter().map(|v| (v - m) - s.ln()).collect()
}

/// At logits near 1e4 an f32 log-softmax formed as x − (m + log Σ …) is off
/// by up to ulp(1e4)/2 ≈ 5e-4 in every output; formed as (x − m) − log Σ …
/// it is exact to f32 rounding of the small terms.
#[test]
fn log_softmax_keeps_precision_at_large_logits() -> Result<()> {
    let rows = [
        vec![1e4, 1e4 + 1.0, 1e4 - 3.0, 1e4 + 0.5],
        vec![-3e4, -3e4 + 2.0, -3e4 + 0.25, -3e4 - 1.0],
        vec![50.0, 49.0, 51.5, 48.25],
    ];
    let flat: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
    let labels = vec![1u32, 2, 0];
    for d in devices() {
        let x = Tensor::from_host(HostData::F32(flat.clone()), &[3, 4], &d)?.requires_grad();
        let ls = x.log_softmax()?.to_vec_f64()?;
        let sm = x.softmax()?.to_vec_f64()?;
        let y = Tensor::ids(labels.clone(), &[3], &d)?;
        let loss = x.softmax_cross_entropy(&y)?;
        loss.backward()?;
        let grad = x.grad().unwrap().to_vec_f64()?;
        let mut want_loss = 0.0;
        for (r, row) in rows.iter().enumerate() {
            // The reference sees the f32-rounded inputs.
            let row32: Vec<f64> = row.iter().map(|&v| v as f32 as f64).collect();
            let want = log_softmax_f64(&row32);
            want_loss -= want[labels[r] as usize] / 3.0;
            for (c, &w) in want.iter().enumerate() {
                let i = r * 4 + c;
                assert!(
                    (ls[i] - w).abs() < 2e-6,
                    "{d} log_softmax[{i}] {} vs {w}",
                    ls[i],
                );
                assert!((sm[i] - w.exp()).abs() < 1e-6, "{d} softmax[{i}]");
                let g = (w.exp() - f64::from(c == labels[r] as usize)) / 3.0;
                assert!(
                    (grad[i] - g).abs() < 1e-6,
                    "{d} xent grad[{i}] {} vs {g}",
                    grad[i]
                );
            }
        }
        let l = loss.item()?;
        assert!((l - want_loss).abs() < 2e-6, "{d} loss {l} vs {want_loss}");
    }
    Ok(())
}

/// Every new fused expression compiles a pipeline; the cache keeps at most
/// `max_cached_pipelines`, and an evicted one is rebuilt when needed again.
#[test]
fn the_pipeline_cache_is_bounded() -> Result<()> {
    let backend = match WgpuBackend::with_options(WgpuOptions {
        max_cached_pipelines: 6,
        max_cached_plans: 4,
        ..WgpuOptions::software_ok()
    }) {
        Ok(b) => b,
        Err(e) => {
            common::no_gpu(e);
            return Ok(());
        }
    };
    let d = Device::new(Arc::new(backend), DeviceKind::Gpu);
    let x = Tensor::from_host(HostData::F32(vec![0.5, -1.0, 2.0]), &[3], &d)?;
    // 40 distinct graph structures: a chain of k tanh-and-scale steps.
    let run = |k: usize| -> Result<Vec<f32>> {
        let mut y = x.clone();
        for i in 0..k {
            y = y.tanh()?.mul_scalar(1.0 + i as f64)?;
        }
        y.to_vec_f32()
    };
    let first = run(3)?;
    for k in 1..40 {
        run(k)?;
        let live = d.backend().counters().pipelines_live;
        assert!(live <= 6, "{live} pipelines live after {k} graphs");
    }
    assert_eq!(run(3)?, first, "a rebuilt pipeline computes the same");
    assert!(d.backend().counters().pipelines_created > 6);
    Ok(())
}
