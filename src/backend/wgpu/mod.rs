//! The GPU backend: plans run as WGSL compute shaders through wgpu on a
//! Vulkan adapter. f32 values and u32 ids only (WGSL has no portable f64).
//!
//! ```no_run
//! use deltagrad::backend::wgpu::{WgpuBackend, WgpuOptions};
//! let gpu = WgpuBackend::with_options(WgpuOptions::software_ok())?;
//! println!("{}", gpu.adapter_summary());
//! # Ok::<(), deltagrad::Error>(())
//! ```

mod buffer;
mod choice;
mod compile;
mod ctx;
mod device;
pub mod emit;
mod exec;
mod host;
pub mod kernels;
mod lower;
mod pipelines;
mod profile;
mod record;
mod segments;
pub mod tune;
mod tune_cache;
pub mod variants;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use buffer::GpuBuffer;
pub use device::{WgpuOptions, list_adapters};
pub use kernels::{KernelId, Shader, shader_sources};
pub use tune::Tuning;
pub use variants::{MatmulShape, MatmulVariant};

use self::buffer::{Pool, Stats, gpu_buffer};
use self::choice::Tuner;
use self::ctx::{Ctx, f64_unsupported, host_data, lock};
use self::device::Gpu;
use self::exec::Exec;
use super::{Backend, Counters, DeviceBuffer, Storage};
use crate::dtype::HostData;
use crate::error::Result;
use crate::ir::Plan;

/// The wgpu backend. Thread-safe; executions are serialized internally.
pub struct WgpuBackend {
    cx: Ctx,
    exec: Mutex<Exec>,
    opts: WgpuOptions,
    profiling: AtomicBool,
}

impl WgpuBackend {
    /// Opens the best Vulkan adapter with default options; software
    /// adapters only when `allow_software`.
    pub fn new(allow_software: bool) -> Result<WgpuBackend> {
        WgpuBackend::with_options(WgpuOptions {
            allow_software,
            ..WgpuOptions::default()
        })
    }

    /// Opens the best Vulkan adapter (discrete > integrated > virtual >
    /// software, the last only with `opts.allow_software`). No adapter is an
    /// `Error::Gpu` listing the adapters seen.
    pub fn with_options(opts: WgpuOptions) -> Result<WgpuBackend> {
        let gpu = Gpu::open(&opts)?;
        let tuner = Tuner::new(
            opts.tuning.clone(),
            opts.tune_budget,
            gpu.limits.clone(),
            opts.tune_cache.as_deref(),
            &gpu.info,
        );
        let stats = Arc::new(Stats::default());
        let storage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let staging = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        Ok(WgpuBackend {
            cx: Ctx {
                gpu,
                pool: Arc::new(Pool::new(storage, "storage buffer", stats.clone())),
                staging: Arc::new(Pool::new(staging, "download buffer", stats.clone())),
                stats,
                last: Mutex::new(None),
            },
            exec: Mutex::new(Exec::new(opts.max_cached_pipelines, tuner, tune::prepare)),
            opts,
            profiling: AtomicBool::new(false),
        })
    }

    /// Destroys the underlying device, as a driver reset would: every later
    /// call returns `Error::Gpu` saying the device was lost. For
    /// fault-injection tests; the backend cannot be used afterwards.
    pub fn lose_device(&self) {
        self.cx.gpu.device.destroy();
    }

    /// `name (type, backend, driver)` of the adapter in use.
    pub fn adapter_summary(&self) -> String {
        self.cx.gpu.summary()
    }

    /// Whether the adapter is a software rasterizer (e.g. llvmpipe).
    pub fn is_software(&self) -> bool {
        self.cx.gpu.is_software()
    }

    /// The limits the device was created with (the adapter's own).
    pub fn limits(&self) -> wgpu::Limits {
        self.cx.gpu.limits.clone()
    }

    /// Whether the device has timestamp queries, which `set_profiling`
    /// needs to report anything.
    pub fn has_timestamps(&self) -> bool {
        self.cx.gpu.timestamp_period.is_some()
    }

    /// The options the backend was opened with.
    pub fn options(&self) -> &WgpuOptions {
        &self.opts
    }

    /// Whether the device runs subgroup operations (the adapter offers
    /// them and `WgpuOptions::subgroups` is on): workgroup reductions then
    /// use them.
    pub fn has_subgroups(&self) -> bool {
        self.cx.gpu.subgroups
    }

    /// The variant a matmul of `shape` runs with now, and how it was
    /// chosen (this tunes its shape class if that was not done yet).
    pub fn matmul_choice(&self, shape: &MatmulShape) -> tune::Choice {
        let mut ex = lock(&self.exec);
        let plan = tune::one_matmul(shape);
        tune::prepare(&mut ex.tuner, &self.cx, &plan);
        ex.tuner.choose(shape)
    }

    /// Time spent tuning so far and the number of shape classes timed
    /// (not read from the cache).
    pub fn tuning_stats(&self) -> (std::time::Duration, usize) {
        let ex = lock(&self.exec);
        (ex.tuner.spent, ex.tuner.tuned)
    }

    /// Times `candidates` for `shape` now, each within an equal share of
    /// `budget` (the first always), without choosing or caching anything:
    /// what the tuner sees. For measurements and tests.
    pub fn time_variants(
        &self,
        shape: &MatmulShape,
        candidates: &[MatmulVariant],
        budget: std::time::Duration,
    ) -> Vec<tune::Timing> {
        let _ex = lock(&self.exec);
        tune::time_candidates(&self.cx, shape, candidates, budget)
    }

    /// Frees pooled buffers no tensor or cached plan is using.
    pub fn trim_pool(&self) {
        self.cx.pool.trim();
        self.cx.staging.trim();
    }
}

impl Backend for WgpuBackend {
    /// `wgpu: <adapter>`, marked `[software adapter]` for a software
    /// rasterizer, whose timings measure the CPU it runs on.
    fn name(&self) -> String {
        let software = if self.is_software() {
            " [software adapter]"
        } else {
            ""
        };
        format!("wgpu: {}{software}", self.adapter_summary())
    }

    fn upload(&self, data: &HostData) -> Result<Storage> {
        self.cx.gpu.check("before upload")?;
        let (bytes, host): (&[u8], _) = match data {
            HostData::F32(v) => (bytemuck::cast_slice(v), None),
            HostData::U32(v) => (bytemuck::cast_slice(v), Some(Arc::new(v.clone()))),
            HostData::F64(_) => return Err(f64_unsupported()),
        };
        let raw = self
            .cx
            .pool
            .acquire(&self.cx.gpu, bytes.len() as u64, None)?;
        if !bytes.is_empty() {
            self.cx.gpu.queue.write_buffer(&raw.buffer, 0, bytes);
        }
        let b = GpuBuffer::new(raw, data.len(), data.dtype(), host, &self.cx.pool);
        self.cx.gpu.check("upload")?;
        Ok(Storage::new(Arc::new(b)))
    }

    fn download(&self, storage: &Storage) -> Result<HostData> {
        self.cx.gpu.check("before download")?;
        let b = gpu_buffer(storage, "the buffer to download")?;
        let bytes = self.cx.read_raw(b.raw()?, b.len() as u64 * 4)?;
        host_data(&bytes, b.dtype())
    }

    fn execute(&self, plan: &Plan, inputs: &[Storage]) -> Result<Vec<Storage>> {
        let mut ex = lock(&self.exec);
        let profile = self.profiling.load(Ordering::Relaxed);
        let max = self.opts.max_cached_plans;
        exec::execute(&mut ex, &self.cx, plan, inputs, max, profile)
    }

    fn sync(&self) -> Result<()> {
        let last = lock(&self.cx.last).clone();
        self.cx.gpu.wait(last)
    }

    fn counters(&self) -> Counters {
        let s = &self.cx.stats;
        let (bytes_in_use, peak_bytes) = s.bytes();
        Counters {
            buffers_created: s.buffers_created.load(Ordering::Relaxed),
            pipelines_created: s.pipelines_created.load(Ordering::Relaxed),
            bind_groups_created: s.bind_groups_created.load(Ordering::Relaxed),
            submissions: s.submissions.load(Ordering::Relaxed),
            launches: s.launches.load(Ordering::Relaxed),
            dispatches: s.dispatches.load(Ordering::Relaxed),
            pipelines_live: s.pipelines_live.load(Ordering::Relaxed),
            bytes_in_use,
            peak_bytes,
        }
    }

    fn is_gpu(&self) -> bool {
        true
    }

    fn forget_plan(&self, plan_id: u64) {
        lock(&self.exec).forget(plan_id);
    }

    /// Profiled executions give each dispatch its own timestamped pass and
    /// wait for the device to read the stamps back (one more submission).
    /// Turning it on forgets the previous profile, so `kernel_times` never
    /// reports an execution from before.
    fn set_profiling(&self, on: bool) {
        if on {
            lock(&self.exec).last_times = None;
        }
        self.profiling.store(on, Ordering::Relaxed);
    }

    fn kernel_times(&self) -> Option<Vec<(String, f64)>> {
        lock(&self.exec).last_times.clone()
    }

    fn launch_notes(&self, plan: &Plan) -> Vec<String> {
        lock(&self.exec)
            .notes(&self.cx, plan)
            .unwrap_or_else(|e| vec![format!("not compiled: {e}")])
    }
}
