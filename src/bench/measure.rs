//! Timing one case and turning its samples into a result row.

use std::time::Instant;

use indicatif::ProgressBar;
use serde_json::Value;

use super::args::Resolved;
use super::cases::{self, Case};
use super::schema::CaseResult;
use super::{peaks, stats};
use crate::device::{Device, DeviceKind};
use crate::error::{Error, Result};

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
    name: &str,
    device: &Device,
    setup: &Resolved,
    bar: &ProgressBar,
) -> Result<CaseResult> {
    let mut case = cases::build(name, &setup.sizes, device)?;
    let samples = time_case(case.as_mut(), setup.warmup, setup.iters, || bar.inc(1))?;
    let s = stats::summarize(&samples)
        .ok_or_else(|| Error::Other(format!("{name}: no valid timings")))?;
    let work = case.work();
    let secs = s.median / 1e3;
    let gflops = work.flops.map(|f| f / secs / 1e9);
    let gbps = work.bytes.map(|b| b / secs / 1e9);
    let backend = device.backend().name();
    let peak = peaks::lookup(&backend);
    let peak_fraction = peak.and_then(|p| {
        gflops
            .map(|g| g / p.fp32_gflops)
            .or(gbps.map(|b| b / p.bandwidth_gbps))
    });
    // 0 means the backend does not track memory (the CPU backend).
    let peak_bytes = Some(device.backend().counters().peak_bytes).filter(|&b| b > 0);
    Ok(CaseResult {
        case: name.to_string(),
        device: match device.kind() {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
        }
        .to_string(),
        backend,
        variant: String::new(),
        shape: case
            .shape()
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
    })
}
