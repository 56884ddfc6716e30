//! The JSON file `--json` writes and `--compare` reads, shared with
//! `benches/torch_reference.py`. BENCHMARKS.md documents every field; keep
//! the two in step and bump `SCHEMA` on an incompatible change.

use std::collections::BTreeMap;
use std::path::Path;

use deltagrad::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const SCHEMA: &str = "deltagrad-bench/1";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Always `deltagrad-bench/1`.
    pub schema: String,
    /// What produced the file, e.g. `deltagrad 0.1.0` or `torch 2.5.1`.
    #[serde(default)]
    pub tool: String,
    #[serde(default)]
    pub host: Host,
    /// Warm-up and iteration counts, fusion, tiny mode, as run.
    #[serde(default)]
    pub settings: BTreeMap<String, Value>,
    pub results: Vec<CaseResult>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Host {
    pub os: String,
    pub arch: String,
    /// CPU model from `/proc/cpuinfo` where readable, else "unknown".
    pub cpu: String,
    pub logical_cores: usize,
    /// Seconds since the Unix epoch when the run started.
    pub unix_time: u64,
    /// 1-minute load average when the run started and ended (Linux): on a
    /// shared machine, a load above the core count means other processes
    /// took CPU time from the measurement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loadavg_start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loadavg_end: Option<f64>,
    /// Anything else a producer records (GPU name, library versions).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CaseResult {
    pub case: String,
    /// `cpu` or `gpu` (PyTorch's `cuda` is written as `gpu`).
    pub device: String,
    /// The backend's own name, e.g. `cpu` or `wgpu: NVIDIA H100 80GB HBM3 (Vulkan)`.
    pub backend: String,
    /// `fused`/`unfused` for deltagrad, `eager`/`compile` for PyTorch.
    #[serde(default)]
    pub variant: String,
    pub shape: BTreeMap<String, Value>,
    #[serde(default)]
    pub warmup: usize,
    pub iters: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbps: Option<f64>,
    /// GFLOP/s (or GB/s for bandwidth cases) over the device's peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_fraction: Option<f64>,
    /// Which peak `peak_fraction` divides by, and its source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_ref: Option<String>,
    /// The backend's device-memory high-water mark after the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_bytes: Option<u64>,
    /// Anything a reader should know about how this case ran differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `--kernel-times`: GPU time per launch of one extra, profiled
    /// iteration, in launch order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_times: Option<Vec<KernelTime>>,
}

/// One launch of a profiled iteration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KernelTime {
    /// Kernel and the ops it fused, e.g. `matmul 8x20x6: matmul + add + tanh`.
    pub label: String,
    /// GPU time between the launch's start and end timestamps.
    pub ms: f64,
}

impl Report {
    pub fn read(path: &Path) -> Result<Report> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let report: Report = serde_json::from_str(&text).map_err(|e| Error::Parse {
            file: path.display().to_string(),
            line: e.line(),
            msg: format!("not a {SCHEMA} file: {e}"),
        })?;
        if report.schema != SCHEMA {
            return Err(Error::Parse {
                file: path.display().to_string(),
                line: 1,
                msg: format!("schema is {:?}, expected {SCHEMA:?}", report.schema),
            });
        }
        Ok(report)
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::Other(format!("serializing the bench report: {e}")))
    }
}

impl Host {
    /// This machine.
    pub fn detect() -> Host {
        Host {
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpu: cpu_model().unwrap_or_else(|| "unknown".to_string()),
            logical_cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            loadavg_start: loadavg(),
            loadavg_end: None,
            extra: BTreeMap::new(),
        }
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The 1-minute load average, where `/proc/loadavg` exists.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
