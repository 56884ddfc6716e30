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
mod compile;
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use buffer::GpuBuffer;
pub use device::{WgpuOptions, list_adapters};
pub use kernels::{KernelId, shader_sources};

use super::{Backend, Counters, Storage};
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::schedule::plan::Plan;
use buffer::{Pool, Raw, Stats};
use device::Gpu;
use exec::Exec;

/// Device, pools and counters, shared by the backend's operations.
pub(super) struct Ctx {
    gpu: Gpu,
    pool: Arc<Pool>,
    staging: Arc<Pool>,
    stats: Arc<Stats>,
    last: Mutex<Option<wgpu::SubmissionIndex>>,
}

impl Ctx {
    fn submit(&self, enc: wgpu::CommandEncoder) -> wgpu::SubmissionIndex {
        let idx = self.gpu.queue.submit([enc.finish()]);
        self.stats.submissions.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last) = Some(idx.clone());
        idx
    }

    /// Copies the first `bytes` of `raw` to the host, waiting for the work
    /// submitted before (queue order makes the copy see it).
    fn read_raw(&self, raw: &Raw, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.staging.acquire(&self.gpu, bytes, None)?;
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("download"),
            });
        enc.copy_buffer_to_buffer(&raw.buffer, 0, &staging.buffer, 0, bytes);
        let idx = self.submit(enc);
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .buffer
            .map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
                let _ = tx.send(r);
            });
        // On a timeout the staging buffer is dropped, not pooled: its map
        // may still complete later.
        self.gpu.wait(Some(idx))?;
        // Another thread's poll may be running the callback right now;
        // the submission is done, so it arrives promptly.
        match rx.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Gpu(format!("mapping a download buffer: {e}"))),
            Err(_) => {
                return Err(Error::Gpu(
                    "download buffer was not mapped after waiting".into(),
                ));
            }
        }
        let data = {
            let view = staging
                .buffer
                .get_mapped_range(0..bytes)
                .map_err(|e| Error::Gpu(format!("reading a download buffer: {e}")))?;
            view.to_vec()
        };
        staging.buffer.unmap();
        self.staging.release(staging);
        Ok(data)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn f64_unsupported() -> Error {
    Error::Gpu("f64 is not supported on the wgpu backend (WGSL has no portable f64); use f32 or the CPU backend".into())
}

/// Little-endian bytes read back from the device as `dtype` values.
fn host_data(bytes: &[u8], dtype: DType) -> Result<HostData> {
    let words = bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
    Ok(match dtype {
        DType::F32 => HostData::F32(words.map(f32::from_le_bytes).collect()),
        DType::U32 => HostData::U32(words.map(u32::from_le_bytes).collect()),
        DType::F64 => return Err(f64_unsupported()),
    })
}

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
            exec: Mutex::new(Exec::default()),
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

    pub fn options(&self) -> &WgpuOptions {
        &self.opts
    }

    /// Frees pooled buffers no tensor or cached plan is using.
    pub fn trim_pool(&self) {
        self.cx.pool.trim();
        self.cx.staging.trim();
    }

    fn buffer<'a>(&self, s: &'a Storage) -> Result<&'a Arc<GpuBuffer>> {
        match s {
            Storage::Gpu(b) => Ok(b),
            Storage::Cpu(_) => Err(Error::invalid(
                "wgpu backend",
                "got a CPU buffer; move the tensor to the GPU first",
            )),
        }
    }
}

impl Backend for WgpuBackend {
    fn name(&self) -> String {
        format!("wgpu: {}", self.adapter_summary())
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
        Ok(Storage::Gpu(Arc::new(b)))
    }

    fn download(&self, storage: &Storage) -> Result<HostData> {
        self.cx.gpu.check("before download")?;
        let b = self.buffer(storage)?;
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
}
