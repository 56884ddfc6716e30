//! Timing one case and turning its samples into a result row.

use std::time::Instant;

use deltagrad::{Device, DeviceKind, Error, Result};
use indicatif::ProgressBar;
use serde_json::Value;

use super::args::Resolved;
use super::cases;
use super::schema::{CaseResult, KernelTime};
use super::spec::{Case, CaseSpec};
use super::{peaks, stats};

/// Times `warmup + iters` iterations of one case, each from just before
/// its `run` to its return (which waits for the device).
pub fn time_case(
    case: &mut dyn Case,
    warmup: usize,
    iters: usize,
    mut tick: impl FnMut(),
) -> Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        case.prepare()?;
        let t = Instant::now();
        case.run()?;
        let elapsed = t.elapsed().as_secs_f64() * 1e3;
        if i >= warmup {
            samples.push(elapsed);
        }
        tick();
    }
    Ok(samples)
}

pub(super) fn measure_case(
    spec: &CaseSpec,
    device: &Device,
    setup: &Resolved,
    bar: &ProgressBar,
) -> Result<CaseResult> {
    let name = spec.name;
    let mut case = cases::build(spec, &setup.sizes, device)?;
    let samples = time_case(case.as_mut(), setup.warmup, setup.iters, || bar.inc(1))?;
    let s = stats::summarize(&samples)
        .ok_or_else(|| Error::Other(format!("{name}: no valid timings")))?;
    let work = case.work();
    let secs = s.median / 1e3;
    let gflops = work.flops.map(|f| f / secs / 1e9);
    let gbps = work.bytes.map(|b| b / secs / 1e9);
    let mut backend = device.backend().name();
    if let Some(n) = device.cpu_threads() {
        // CPU results depend on the thread count; it is part of what ran.
        // So does the speed of its products on the GEMM kernel.
        let gemm = deltagrad::backend::cpu::f32_gemm_kernel();
        backend = format!(
            "{backend}, {n} thread{}, f32 GEMM {gemm}",
            if n == 1 { "" } else { "s" }
        );
    }
    let peak = peaks::lookup(&backend);
    let peak_fraction = peak.and_then(|p| {
        gflops
            .map(|g| g / p.fp32_gflops)
            .or(gbps.map(|b| b / p.bandwidth_gbps))
    });
    // 0 means the backend does not track memory (the CPU backend).
    let peak_bytes = Some(device.backend().counters().peak_bytes).filter(|&b| b > 0);
    // After reading the high-water mark: profiling allocates its own buffers.
    let kernel_times = if setup.kernel_times {
        profile(case.as_mut(), device)?
    } else {
        None
    };
    Ok(CaseResult {
        case: name.to_string(),
        device: match device.kind() {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
        }
        .to_string(),
        backend,
        variant: String::new(),
        shape: spec
            .shape(&setup.sizes)
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect(),
        warmup: setup.warmup,
        iters: setup.iters,
        median_ms: s.median,
        min_ms: s.min,
        max_ms: s.max,
        p10_ms: s.p10,
        p90_ms: s.p90,
        windows_per_s: work.windows.map(|w| w as f64 / secs),
        gflops,
        gbps,
        peak_fraction,
        peak_ref: peak_fraction.and(peak).map(|p| p.source.to_string()),
        peak_bytes,
        note: None,
        kernel_times,
    })
}

/// Iterations `--kernel-times` profiles after the timed ones.
pub const PROFILE_ITERS: usize = 10;

/// `PROFILE_ITERS` more, untimed iterations with profiling on, and each
/// launch's median over them. Kept apart from the timed ones: profiling
/// records differently on a GPU (a pass per launch) and waits to read the
/// stamps. `None` where the adapter has no timestamp queries.
fn profile(case: &mut dyn Case, device: &Device) -> Result<Option<Vec<KernelTime>>> {
    let backend = device.backend();
    let mut runs: Vec<Vec<(String, f64)>> = Vec::with_capacity(PROFILE_ITERS);
    backend.set_profiling(true);
    let mut ran = Ok(());
    for _ in 0..PROFILE_ITERS {
        ran = case.prepare().and_then(|_| case.run());
        match (&ran, backend.kernel_times()) {
            (Ok(()), Some(t)) => runs.push(t),
            _ => break,
        }
    }
    // The backend is shared process-wide: never leave profiling on.
    backend.set_profiling(false);
    ran?;
    Ok(per_launch_medians(&runs))
}

/// Each launch's median over `runs`; a case whose launches differ between
/// iterations (its plan changed) is reported from its last iteration.
fn per_launch_medians(runs: &[Vec<(String, f64)>]) -> Option<Vec<KernelTime>> {
    let last = runs.last()?;
    let same = runs
        .iter()
        .all(|r| r.len() == last.len() && r.iter().zip(last).all(|(a, b)| a.0 == b.0));
    let used = if same {
        runs
    } else {
        std::slice::from_ref(last)
    };
    Some(
        last.iter()
            .enumerate()
            .map(|(i, (label, _))| {
                let samples: Vec<f64> = used.iter().map(|r| r[i].1).collect();
                KernelTime {
                    label: label.clone(),
                    ms: stats::summarize(&samples).map_or(0.0, |s| s.median),
                }
            })
            .collect(),
    )
}
