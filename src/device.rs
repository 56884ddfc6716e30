//! Where tensors live and kernels run.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::backend::wgpu::{WgpuBackend, WgpuOptions};
use crate::error::{Error, Result};

/// Which kind of backend a device runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// The CPU reference backend (f32 and f64).
    Cpu,
    /// The wgpu backend (f32 only), on a hardware or software adapter.
    Gpu,
}

/// A backend handle; cheap to clone. Two devices are the same when they
/// share the backend instance.
#[derive(Clone)]
pub struct Device {
    backend: Arc<dyn Backend>,
    kind: DeviceKind,
    id: u64,
}

static NEXT_DEVICE: AtomicU64 = AtomicU64::new(1);

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.backend.name())
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.backend.name())
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Device) -> bool {
        self.id == other.id
    }
}

impl Eq for Device {}

static CPU: OnceLock<Device> = OnceLock::new();
/// One GPU device per process, keyed by whether software adapters were
/// allowed: adapters and pipelines are expensive to create.
static GPU: Mutex<Vec<(bool, Device)>> = Mutex::new(Vec::new());

impl Device {
    /// A device over any backend (one made with custom options, say).
    pub fn new(backend: Arc<dyn Backend>, kind: DeviceKind) -> Device {
        Device {
            backend,
            kind,
            id: NEXT_DEVICE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A process-unique id: per-device caches key on it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The CPU reference backend.
    pub fn cpu() -> Device {
        CPU.get_or_init(|| Device::new(Arc::new(CpuBackend::new()), DeviceKind::Cpu))
            .clone()
    }

    /// The best GPU adapter (discrete first), software adapters included
    /// when there is nothing better. An error lists the adapters seen.
    pub fn gpu() -> Result<Device> {
        Device::gpu_with(true)
    }

    /// A hardware GPU only.
    pub fn hardware_gpu() -> Result<Device> {
        Device::gpu_with(false)
    }

    fn gpu_with(allow_software: bool) -> Result<Device> {
        Device::gpu_with_options(WgpuOptions {
            allow_software,
            ..WgpuOptions::default()
        })
    }

    /// The process's GPU device for `opts.allow_software` (the one
    /// `gpu()` or `hardware_gpu()` returns), opened with `opts` if it is
    /// not open yet; an open one is returned as it is. Tests open it first
    /// with `WgpuOptions::software_ok()` (a fixed matmul variant choice,
    /// no tuning cache written).
    pub fn gpu_with_options(opts: WgpuOptions) -> Result<Device> {
        let allow_software = opts.allow_software;
        let mut cache = GPU.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, d)) = cache.iter().find(|(s, _)| *s == allow_software) {
            return Ok(d.clone());
        }
        let backend = WgpuBackend::with_options(opts)?;
        let d = Device::new(Arc::new(backend), DeviceKind::Gpu);
        eprintln!("deltagrad: device {d}");
        cache.push((allow_software, d.clone()));
        Ok(d)
    }

    /// A hardware GPU if there is one, else the CPU backend (a software
    /// GPU adapter is slower than the CPU backend on the same cores). Says
    /// which on one line of stderr; `Device::gpu()`'s error lists the
    /// adapters seen.
    pub fn best() -> Device {
        match Device::hardware_gpu() {
            Ok(d) => d,
            Err(_) => {
                eprintln!("deltagrad: device cpu (no hardware GPU found)");
                Device::cpu()
            }
        }
    }

    /// `DELTAGRAD_DEVICE=cpu|gpu` if set, else `best()`.
    pub fn from_env() -> Result<Device> {
        match std::env::var("DELTAGRAD_DEVICE").ok().as_deref() {
            Some("cpu") => Ok(Device::cpu()),
            Some("gpu") => Device::gpu(),
            None | Some("") => Ok(Device::best()),
            Some(other) => Err(Error::invalid(
                "DELTAGRAD_DEVICE",
                format!("expected cpu or gpu, got {other:?}"),
            )),
        }
    }

    /// Parses `cpu`, `gpu` or `auto`.
    pub fn parse(name: &str) -> Result<Device> {
        match name {
            "cpu" => Ok(Device::cpu()),
            "gpu" => Device::gpu(),
            "auto" => Device::from_env(),
            other => Err(Error::invalid(
                "device",
                format!("expected cpu, gpu or auto, got {other:?}"),
            )),
        }
    }

    /// CPU or GPU.
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }
    /// Whether this is a GPU device (hardware or software adapter).
    pub fn is_gpu(&self) -> bool {
        self.kind == DeviceKind::Gpu
    }
    /// The backend that stores buffers and runs plans for this device.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }
    /// Waits for all submitted work (call before stopping a benchmark timer).
    pub fn sync(&self) -> Result<()> {
        self.backend.sync()
    }
}
