//! Adapter choice, device creation, error capture and bounded waiting.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::choice::{self, Tuning};
use crate::error::{Error, Result};

/// How to pick and drive the device.
#[derive(Clone, Debug)]
pub struct WgpuOptions {
    /// Accept a software rasterizer (e.g. Mesa's llvmpipe/lavapipe). The
    /// engine's automatic device choice leaves this off; tests and an
    /// explicit `DELTAGRAD_DEVICE=gpu` turn it on.
    pub allow_software: bool,
    /// Longest wait for the device in `sync`/`download` before giving up
    /// with `Error::Gpu`.
    pub poll_timeout: Duration,
    /// Per-plan caches kept (least recently used are dropped).
    pub max_cached_plans: usize,
    /// Compiled pipelines kept (least recently used are dropped). Each
    /// distinct fused expression has its own, so a process that keeps
    /// building new graph structures would otherwise grow without bound.
    pub max_cached_pipelines: usize,
    /// How each matmul's variant (tiling, split-K) is chosen: tuned on
    /// first use of a shape class, the fixed heuristic, or one variant for
    /// all. Default: `DELTAGRAD_TUNE` (unset or `auto`: tune; `off`: the
    /// heuristic; a variant name such as `64x64/4x4/k16`: that variant).
    pub tuning: Tuning,
    /// Folder of the on-disk tuning cache, one file per adapter and
    /// driver; `None` keeps choices in memory only. Default:
    /// `DELTAGRAD_TUNE_CACHE` (empty or `off`: none), else
    /// `$XDG_CACHE_HOME/deltagrad`, else `$HOME/.cache/deltagrad`.
    pub tune_cache: Option<PathBuf>,
    /// Wall-clock time the tuner may spend on one shape class (pipeline
    /// builds included); at least the first candidate is always timed.
    /// Default: `DELTAGRAD_TUNE_BUDGET_MS`, else 120 ms.
    pub tune_budget: Duration,
    /// Use subgroup operations for workgroup reductions where the adapter
    /// offers them (else, and when off, a workgroup-memory tree).
    pub subgroups: bool,
    /// Create the modules of kernels whose every index is bounded by the
    /// checked launch sizes without runtime bounds checks
    /// (`KernelId::trusted`). Off: every module is checked.
    pub trusted_shaders: bool,
}

impl Default for WgpuOptions {
    fn default() -> Self {
        WgpuOptions {
            allow_software: false,
            poll_timeout: Duration::from_secs(60),
            max_cached_plans: 64,
            max_cached_pipelines: 256,
            tuning: Tuning::from_env(),
            tune_cache: choice::cache_dir_from_env(),
            tune_budget: choice::budget_from_env(),
            subgroups: true,
            trusted_shaders: true,
        }
    }
}

impl WgpuOptions {
    /// What tests use: defaults, but accepting software adapters, and the
    /// matmul variants of the fixed heuristic (deterministic, no timing,
    /// nothing written to the tuning cache).
    pub fn software_ok() -> Self {
        WgpuOptions {
            allow_software: true,
            tuning: Tuning::Heuristic,
            tune_cache: None,
            ..Self::default()
        }
    }
}

/// Errors reported asynchronously by wgpu: recorded here and returned by
/// the next call instead of panicking (wgpu's default handler panics).
#[derive(Default)]
struct ErrorSink {
    first: Option<String>,
    lost: Option<String>,
}

pub(super) struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Nanoseconds per timestamp tick, where the device has timestamp
    /// queries (requested whenever the adapter offers them: they cost
    /// nothing until a pass asks for timestamp writes).
    pub timestamp_period: Option<f64>,
    /// Whether the device was created with subgroup operations (the
    /// adapter offers them and the options allow them).
    pub subgroups: bool,
    /// `WgpuOptions::trusted_shaders`.
    pub trusted_shaders: bool,
    sink: Arc<Mutex<ErrorSink>>,
    timeout: Duration,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    // Debug builds would otherwise load the Vulkan validation layers, which
    // are slow and not what users run; WGPU_VALIDATION=1 still enables them.
    desc.flags = wgpu::InstanceFlags::empty().with_env();
    wgpu::Instance::new(desc)
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {:?}, driver {} {})",
        info.name, info.device_type, info.backend, info.driver, info.driver_info
    )
}

/// Lower is better: discrete > integrated > virtual > other > software.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Every Vulkan adapter visible, described as `name (type, backend, driver)`.
pub fn list_adapters() -> Vec<String> {
    let adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::VULKAN));
    adapters.iter().map(|a| describe(&a.get_info())).collect()
}

impl Gpu {
    pub fn open(opts: &WgpuOptions) -> Result<Gpu> {
        let adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::VULKAN));
        let seen: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
        let adapter = adapters
            .into_iter()
            .filter(|a| opts.allow_software || a.get_info().device_type != wgpu::DeviceType::Cpu)
            .min_by_key(|a| rank(a.get_info().device_type))
            .ok_or_else(|| {
                Error::Gpu(format!(
                    "no usable Vulkan adapter (software adapters {}); adapters seen: [{}]",
                    if opts.allow_software {
                        "allowed"
                    } else {
                        "not allowed"
                    },
                    seen.join("; ")
                ))
            })?;
        let info = adapter.get_info();
        // The adapter's own limits, not the WebGPU defaults, so tensors up
        // to its maximum binding size fit.
        let limits = adapter.limits();
        let timestamps = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        let subgroups = if opts.subgroups {
            adapter.features() & wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::empty()
        };
        let desc = wgpu::DeviceDescriptor {
            label: Some("deltagrad"),
            required_features: timestamps | subgroups,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::Gpu(format!("request_device on {}: {e}", describe(&info))))?;
        let sink = Arc::new(Mutex::new(ErrorSink::default()));
        let s = sink.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut g = s.lock().unwrap_or_else(|p| p.into_inner());
            g.first.get_or_insert_with(|| e.to_string());
        }));
        let s = sink.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let mut g = s.lock().unwrap_or_else(|p| p.into_inner());
            g.lost = Some(format!("device lost ({reason:?}): {msg}"));
        });
        let timestamp_period = (!timestamps.is_empty())
            .then(|| f64::from(queue.get_timestamp_period()))
            .filter(|p| p.is_finite() && *p > 0.0);
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            timestamp_period,
            subgroups: !subgroups.is_empty(),
            trusted_shaders: opts.trusted_shaders,
            sink,
            timeout: opts.poll_timeout,
        })
    }

    pub fn summary(&self) -> String {
        describe(&self.info)
    }

    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Returns (and clears) an error wgpu reported since the last check, or
    /// the device loss, which is permanent.
    pub fn check(&self, context: &str) -> Result<()> {
        let mut g = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lost) = &g.lost {
            return Err(Error::Gpu(format!("{context}: {lost}")));
        }
        match g.first.take() {
            Some(e) => Err(Error::Gpu(format!("{context}: {e}"))),
            None => Ok(()),
        }
    }

    /// Runs `f` inside validation and out-of-memory error scopes, turning a
    /// captured error into `Error::Gpu` naming `what`.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let r = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        match v.or(o) {
            Some(e) => Err(Error::Gpu(format!("{what}: {e}"))),
            None => Ok(r),
        }
    }

    /// Blocks until `index` (or everything submitted) has finished, at most
    /// the configured timeout.
    pub fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let r = self.device.poll(wgpu::PollType::Wait {
            submission_index: index,
            timeout: Some(self.timeout),
        });
        self.check("waiting for the device")?;
        match r {
            Ok(_) => Ok(()),
            Err(wgpu::PollError::Timeout) => Err(Error::Gpu(format!(
                "the device did not finish within {:?} ({})",
                self.timeout,
                self.summary()
            ))),
            Err(e) => Err(Error::Gpu(format!("waiting for the device: {e}"))),
        }
    }

    /// Checks a buffer of `bytes` against the adapter's limits, so wgpu is
    /// never asked for one it would reject.
    pub fn check_size(&self, what: &str, bytes: u64) -> Result<()> {
        let max_bind = self.limits.max_storage_buffer_binding_size;
        let max_buf = self.limits.max_buffer_size;
        if bytes > max_bind || bytes > max_buf {
            return Err(Error::Gpu(format!(
                "{what} needs {bytes} bytes, more than this adapter allows \
                 (max_storage_buffer_binding_size {max_bind}, max_buffer_size {max_buf}) on {}",
                self.info.name
            )));
        }
        Ok(())
    }
}
