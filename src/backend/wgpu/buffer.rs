//! Device buffers and their pools. Buffers are bucketed by size class and
//! reused after the tensor holding them is dropped, so a steady training
//! loop allocates nothing.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::device::Gpu;
use crate::backend::{DeviceBuffer, Storage};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Smallest buffer handed out; also keeps every size a multiple of 16, as
/// vec4 bindings need.
const MIN_BYTES: u64 = 256;

/// Counts shared by pools and plan caches (see `Counters`).
#[derive(Default)]
pub(super) struct Stats {
    pub buffers_created: AtomicU64,
    pub pipelines_created: AtomicU64,
    pub bind_groups_created: AtomicU64,
    pub submissions: AtomicU64,
    pub launches: AtomicU64,
    pub dispatches: AtomicU64,
    pub pipelines_live: AtomicU64,
    bytes: AtomicU64,
    peak: AtomicU64,
}

impl Stats {
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.peak.load(Ordering::Relaxed),
        )
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// One wgpu buffer with a process-unique id (bind groups are cached by the
/// ids of the buffers they bind). Dropping it releases the device memory.
pub(super) struct Raw {
    pub buffer: wgpu::Buffer,
    pub id: u64,
    pub size: u64,
    stats: Arc<Stats>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.stats.bytes.fetch_sub(self.size, Ordering::Relaxed);
    }
}

/// Creates a buffer of exactly `size` bytes, inside error scopes.
pub(super) fn create_raw(
    gpu: &Gpu,
    stats: &Arc<Stats>,
    size: u64,
    usage: wgpu::BufferUsages,
    label: &str,
) -> Result<Raw> {
    let buffer = gpu.scoped(&format!("allocating {size} bytes ({label})"), || {
        gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    })?;
    stats.buffers_created.fetch_add(1, Ordering::Relaxed);
    let now = stats.bytes.fetch_add(size, Ordering::Relaxed) + size;
    stats.peak.fetch_max(now, Ordering::Relaxed);
    Ok(Raw {
        buffer,
        id: next_id(),
        size,
        stats: stats.clone(),
    })
}

/// Rounds up to the next of 1, 1.25, 1.5, 1.75 × a power of two (at least
/// `MIN_BYTES`): at most 25% waste, few distinct classes.
pub(super) fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(MIN_BYTES);
    let p = b.next_power_of_two();
    if p <= MIN_BYTES {
        return MIN_BYTES;
    }
    let lo = p / 2;
    let step = lo / 4;
    lo + (b - lo).div_ceil(step) * step
}

/// Free buffers of one usage, by size.
pub(super) struct Pool {
    free: Mutex<HashMap<u64, Vec<Raw>>>,
    usage: wgpu::BufferUsages,
    label: &'static str,
    stats: Arc<Stats>,
}

impl Pool {
    pub fn new(usage: wgpu::BufferUsages, label: &'static str, stats: Arc<Stats>) -> Pool {
        Pool {
            free: Mutex::new(HashMap::new()),
            usage,
            label,
            stats,
        }
    }

    /// A buffer of at least `bytes`; the one with id `prefer` if it is free
    /// (so a replayed plan gets the buffers its bind groups were made for).
    pub fn acquire(&self, gpu: &Gpu, bytes: u64, prefer: Option<u64>) -> Result<Raw> {
        gpu.check_size(self.label, bytes)?;
        let limit = gpu
            .limits
            .max_storage_buffer_binding_size
            .min(gpu.limits.max_buffer_size)
            & !15;
        let mut size = size_class(bytes).min(limit);
        if size < bytes {
            size = bytes.next_multiple_of(4);
        }
        {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = free.get_mut(&size) {
                let pos = prefer
                    .and_then(|id| list.iter().position(|r| r.id == id))
                    .or(list.len().checked_sub(1));
                if let Some(pos) = pos {
                    return Ok(list.swap_remove(pos));
                }
            }
        }
        create_raw(gpu, &self.stats, size, self.usage, self.label)
    }

    pub fn release(&self, raw: Raw) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.entry(raw.size).or_default().push(raw);
    }

    /// Frees every pooled (unused) buffer.
    pub fn trim(&self) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A tensor's storage on the GPU: a pooled buffer plus its length and
/// element type. U32 buffers (ids, labels) keep a host copy: they are
/// always uploaded from the host, and the deterministic scatter-add sorts
/// them there.
pub struct GpuBuffer {
    raw: Option<Raw>,
    len: usize,
    dtype: DType,
    /// Identity of the contents (a new upload is a new uid, even when the
    /// pool hands back the same wgpu buffer).
    uid: u64,
    host: Option<Arc<Vec<u32>>>,
    pool: Weak<Pool>,
}

impl GpuBuffer {
    pub(super) fn new(
        raw: Raw,
        len: usize,
        dtype: DType,
        host: Option<Arc<Vec<u32>>>,
        pool: &Arc<Pool>,
    ) -> GpuBuffer {
        GpuBuffer {
            raw: Some(raw),
            len,
            dtype,
            uid: next_id(),
            host,
            pool: Arc::downgrade(pool),
        }
    }

    /// The host copy of a U32 buffer's contents.
    pub(super) fn host_copy(&self) -> Option<&Arc<Vec<u32>>> {
        self.host.as_ref()
    }

    pub(super) fn uid(&self) -> u64 {
        self.uid
    }

    pub(super) fn raw(&self) -> Result<&Raw> {
        self.raw
            .as_ref()
            .ok_or_else(|| Error::Gpu("buffer used after release".into()))
    }
}

/// The GPU buffer behind a storage, or an error naming what went wrong.
pub(super) fn gpu_buffer(s: &Storage, what: &str) -> Result<Arc<GpuBuffer>> {
    s.downcast::<GpuBuffer>().ok_or_else(|| {
        Error::invalid(
            "wgpu backend",
            format!("{what} is a buffer of another backend; move the tensor to the GPU first"),
        )
    })
}

impl DeviceBuffer for GpuBuffer {
    fn len(&self) -> usize {
        self.len
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn host_ids(&self) -> Option<Arc<Vec<u32>>> {
        self.host.clone()
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let (Some(raw), Some(pool)) = (self.raw.take(), self.pool.upgrade()) {
            pool.release(raw);
        }
    }
}

impl fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GpuBuffer({} x {}", self.len, self.dtype)?;
        if let Some(r) = &self.raw {
            write!(f, ", {} bytes, id {}", r.size, r.id)?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(size_class(0), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 320);
        assert_eq!(size_class(512), 512);
        assert_eq!(size_class(513), 640);
        assert_eq!(size_class(1000), 1024);
        assert_eq!(size_class(20_000_000), 20_971_520);
        for b in [1u64, 300, 4097, 123_457, 9_999_999] {
            let c = size_class(b);
            assert!(
                c >= b && c.is_multiple_of(16) && (c as f64) <= (b.max(256) as f64) * 1.25 + 16.0
            );
        }
    }
}
