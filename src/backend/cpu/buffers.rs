//! Host buffers that return to their backend's pool when dropped, so that
//! a warmed-up step reuses the vectors of the step before instead of
//! allocating (the GPU backend's buffer pool, on the host).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use crate::dtype::{DType, HostData};

/// Free vectors kept for reuse, at most this many bytes; beyond it the
/// oldest are released.
const FREE_MAX_BYTES: usize = 256 << 20;

/// A buffer of the CPU backend: host data behind a lock, returned to the
/// pool it came from when the last handle drops.
#[derive(Debug)]
pub struct CpuBuffer {
    data: RwLock<HostData>,
    len: usize,
    dtype: DType,
    home: Weak<Free>,
}

impl CpuBuffer {
    /// A buffer holding `data`, outside any pool.
    pub fn new(data: HostData) -> CpuBuffer {
        CpuBuffer {
            len: data.len(),
            dtype: data.dtype(),
            data: RwLock::new(data),
            home: Weak::new(),
        }
    }
    /// Reads the contents. A poisoned lock (a panic while writing) still
    /// yields the data: every writer replaces whole values.
    pub fn read(&self) -> RwLockReadGuard<'_, HostData> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }
    pub(super) fn write(&self) -> RwLockWriteGuard<'_, HostData> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
    /// The number of elements.
    pub(super) fn elements(&self) -> usize {
        self.len
    }
    /// The element type.
    pub(super) fn element_type(&self) -> DType {
        self.dtype
    }
}

impl Drop for CpuBuffer {
    fn drop(&mut self) {
        if let Some(free) = self.home.upgrade() {
            let data = std::mem::replace(
                self.data.get_mut().unwrap_or_else(|e| e.into_inner()),
                HostData::U32(Vec::new()),
            );
            free.put(data);
        }
    }
}

/// The free vectors, oldest first.
#[derive(Debug, Default)]
struct Free {
    list: Mutex<(Vec<HostData>, usize)>,
}

impl Free {
    fn put(&self, data: HostData) {
        let bytes = data.len() * data.dtype().size_bytes();
        let mut g = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let (list, total) = &mut *g;
        list.push(data);
        *total += bytes;
        while *total > FREE_MAX_BYTES && !list.is_empty() {
            let old = list.remove(0);
            *total -= old.len() * old.dtype().size_bytes();
        }
    }

    fn take(&self, dtype: DType, len: usize) -> Option<HostData> {
        let mut g = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let (list, total) = &mut *g;
        let at = list
            .iter()
            .rposition(|d| d.dtype() == dtype && d.len() == len)?;
        let d = list.remove(at);
        *total -= len * dtype.size_bytes();
        Some(d)
    }
}

/// Hands out buffers, reusing freed vectors of the same type and length.
#[derive(Debug, Default)]
pub(super) struct BufferPool {
    free: Arc<Free>,
    created: AtomicU64,
}

impl BufferPool {
    /// A buffer of `len` elements of `dtype`, with unspecified contents.
    pub(super) fn acquire(&self, dtype: DType, len: usize) -> Arc<CpuBuffer> {
        let data = self.free.take(dtype, len).unwrap_or_else(|| {
            self.created.fetch_add(1, Ordering::Relaxed);
            HostData::zeros(dtype, len)
        });
        Arc::new(CpuBuffer {
            data: RwLock::new(data),
            len,
            dtype,
            home: Arc::downgrade(&self.free),
        })
    }

    /// A buffer holding a copy of `data`.
    pub(super) fn upload(&self, data: &HostData) -> Arc<CpuBuffer> {
        let b = self.acquire(data.dtype(), data.len());
        {
            let mut g = b.write();
            match (&mut *g, data) {
                (HostData::F32(d), HostData::F32(s)) => d.copy_from_slice(s),
                (HostData::F64(d), HostData::F64(s)) => d.copy_from_slice(s),
                (HostData::U32(d), HostData::U32(s)) => d.copy_from_slice(s),
                (d, s) => *d = s.clone(),
            }
        }
        b
    }

    /// Vectors allocated so far (reuses not counted).
    pub(super) fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }
}
