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
    cpu_threads: Option<usize>,
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
            cpu_threads: None,
        }
    }

    /// A process-unique id: per-device caches key on it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The process's CPU device, on `DELTAGRAD_THREADS` threads, or as
    /// many as the machine has cores when it is unset. A value that is not
    /// a whole number from 1 to 4096 (`abc`, `0`) falls back to the core
    /// count with a warning on stderr, and so does a thread count the
    /// operating system refuses (then one thread). Results are the same
    /// bits for any count.
    pub fn cpu() -> Device {
        CPU.get_or_init(|| {
            let threads = threads_from_env();
            Device::cpu_with_threads(threads).unwrap_or_else(|e| {
                eprintln!("deltagrad: warning: {e}; the CPU backend runs on one thread");
                Device::cpu_backend(CpuBackend::new())
            })
        })
        .clone()
    }

    /// A new CPU device of its own on `threads` threads (0 is an error).
    /// Its results are bit-identical to those of any other thread count.
    pub fn cpu_with_threads(threads: usize) -> Result<Device> {
        Ok(Device::cpu_backend(CpuBackend::with_threads(threads)?))
    }

    fn cpu_backend(backend: CpuBackend) -> Device {
        let threads = backend.threads();
        Device {
            cpu_threads: Some(threads),
            ..Device::new(Arc::new(backend), DeviceKind::Cpu)
        }
    }

    /// The number of threads a CPU device spreads its work over; `None`
    /// for a GPU device (or a backend made with [`Device::new`]).
    pub fn cpu_threads(&self) -> Option<usize> {
        self.cpu_threads
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

/// Most threads `DELTAGRAD_THREADS` may ask for.
const MAX_THREADS: usize = 4096;

/// The thread count `DELTAGRAD_THREADS` asks for, else the core count.
fn threads_from_env() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match std::env::var("DELTAGRAD_THREADS") {
        Err(std::env::VarError::NotPresent) => cores,
        Ok(v) if v.trim().is_empty() => cores,
        Ok(v) => match parse_threads(&v) {
            Some(n) => n,
            None => {
                eprintln!(
                    "deltagrad: warning: DELTAGRAD_THREADS={v:?} is not a whole number \
                     from 1 to {MAX_THREADS}; using {cores} (the core count)"
                );
                cores
            }
        },
        Err(e) => {
            eprintln!("deltagrad: warning: DELTAGRAD_THREADS: {e}; using {cores} (the core count)");
            cores
        }
    }
}

/// A thread count from 1 to `MAX_THREADS`.
fn parse_threads(v: &str) -> Option<usize> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_THREADS).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_parse_or_are_refused() {
        assert_eq!(parse_threads("3"), Some(3));
        assert_eq!(parse_threads(" 1 "), Some(1));
        for bad in ["0", "abc", "-2", "1.5", "99999"] {
            assert_eq!(parse_threads(bad), None, "{bad}");
        }
        assert!(Device::cpu_with_threads(0).is_err());
        assert_eq!(Device::cpu_with_threads(3).unwrap().cpu_threads(), Some(3));
    }
}
