//! Host buffers that return to their backend's pool when dropped, so that
//! a warmed-up step reuses the vectors of the step before instead of
//! allocating (the GPU backend's buffer pool, on the host).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use crate::dtype::{DType, HostData};
use crate::hash::FastMap;

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

/// The free vectors, by type and length, at most `cap` bytes of them.
#[derive(Debug)]
struct Free {
    lists: Mutex<FreeLists>,
    cap: usize,
}

impl Default for Free {
    fn default() -> Free {
        Free {
            lists: Mutex::default(),
            cap: FREE_MAX_BYTES,
        }
    }
}

/// A vector's type and length: which requests it can serve.
type Size = (DType, usize);

#[derive(Debug, Default)]
struct FreeLists {
    /// Per size, the free vectors with the number of the `put` that
    /// returned them, oldest first. A request takes the newest (still in
    /// cache); keyed rather than one list, because a model whose shapes
    /// vary (the sentence-level NER model's buckets) keeps thousands free
    /// and a scan for each request cost it 7 % of a training step.
    by_size: FastMap<Size, VecDeque<(u64, HostData)>>,
    /// Every `put`, in order, for releasing the oldest vectors first;
    /// entries whose vector was taken since are skipped (and dropped when
    /// they outnumber the free vectors).
    order: VecDeque<(u64, Size)>,
    puts: u64,
    free: usize,
    bytes: usize,
}

fn bytes_of(data: &HostData) -> usize {
    data.len() * data.dtype().size_bytes()
}

impl FreeLists {
    /// Whether the vector `put` number `n` returned is still free.
    fn holds(&self, n: u64, size: &Size) -> bool {
        self.by_size
            .get(size)
            .is_some_and(|q| q.binary_search_by_key(&n, |e| e.0).is_ok())
    }
}

impl Free {
    fn put(&self, data: HostData) {
        let mut g = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        let lists = &mut *g;
        let size = (data.dtype(), data.len());
        let n = lists.puts;
        lists.puts += 1;
        lists.bytes += bytes_of(&data);
        lists.free += 1;
        lists.by_size.entry(size).or_default().push_back((n, data));
        lists.order.push_back((n, size));
        while lists.bytes > self.cap {
            let Some((n, size)) = lists.order.pop_front() else {
                break;
            };
            let Some(q) = lists.by_size.get_mut(&size) else {
                continue;
            };
            // The oldest free vector of its size, unless it was taken.
            if q.front().is_some_and(|e| e.0 == n)
                && let Some((_, old)) = q.pop_front()
            {
                lists.bytes -= bytes_of(&old);
                lists.free -= 1;
                if q.is_empty() {
                    lists.by_size.remove(&size);
                }
            }
        }
        if lists.order.len() > 2 * lists.free + 64 {
            let mut kept = std::mem::take(&mut lists.order);
            kept.retain(|(n, size)| lists.holds(*n, size));
            lists.order = kept;
        }
    }

    fn take(&self, dtype: DType, len: usize) -> Option<HostData> {
        let mut g = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        let lists = &mut *g;
        let size = (dtype, len);
        let q = lists.by_size.get_mut(&size)?;
        let (_, d) = q.pop_back()?;
        if q.is_empty() {
            lists.by_size.remove(&size);
        }
        lists.bytes -= bytes_of(&d);
        lists.free -= 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vec_of(len: usize, value: f32) -> HostData {
        HostData::F32(vec![value; len])
    }

    fn first(d: &HostData) -> f32 {
        match d {
            HostData::F32(v) => v[0],
            _ => f32::NAN,
        }
    }

    /// A request takes the newest free vector of its type and length, and
    /// only one of those.
    #[test]
    fn a_request_takes_the_newest_vector_of_its_size() {
        let free = Free::default();
        free.put(vec_of(4, 1.0));
        free.put(vec_of(8, 2.0));
        free.put(vec_of(4, 3.0));
        free.put(HostData::U32(vec![0; 4]));
        assert_eq!(free.take(DType::F32, 4).as_ref().map(first), Some(3.0));
        assert_eq!(free.take(DType::F32, 4).as_ref().map(first), Some(1.0));
        assert!(free.take(DType::F32, 4).is_none());
        assert!(free.take(DType::F64, 8).is_none());
        assert_eq!(free.take(DType::F32, 8).as_ref().map(first), Some(2.0));
        assert!(free.take(DType::U32, 4).is_some());
    }

    /// Over the cap, the oldest free vectors go first, whatever their
    /// size, and vectors taken meanwhile are not counted.
    #[test]
    fn over_the_cap_the_oldest_free_vectors_are_released() {
        // Room for three vectors of 4 f32s.
        let free = Free {
            lists: Mutex::default(),
            cap: 48,
        };
        free.put(vec_of(4, 1.0));
        free.put(vec_of(4, 2.0));
        free.put(vec_of(2, 3.0));
        assert_eq!(free.take(DType::F32, 2).as_ref().map(first), Some(3.0));
        free.put(vec_of(4, 4.0));
        free.put(vec_of(4, 5.0));
        // 1.0 went; 2.0, 4.0 and 5.0 fill the cap.
        let left: Vec<f32> = std::iter::from_fn(|| free.take(DType::F32, 4))
            .map(|d| first(&d))
            .collect();
        assert_eq!(left, [5.0, 4.0, 2.0]);
        assert_eq!(free.lists.lock().unwrap().bytes, 0);
    }

    /// Vectors returned and taken again step after step leave no trail.
    #[test]
    fn returning_and_taking_keeps_the_bookkeeping_small() {
        let free = Free::default();
        for step in 0..10_000 {
            free.put(vec_of(1 + step % 5, 0.0));
            free.put(vec_of(7, 0.0));
            assert!(free.take(DType::F32, 1 + step % 5).is_some());
            assert!(free.take(DType::F32, 7).is_some());
        }
        let lists = free.lists.lock().unwrap();
        assert_eq!((lists.free, lists.bytes), (0, 0));
        assert!(lists.order.len() <= 66, "{} entries", lists.order.len());
    }
}
