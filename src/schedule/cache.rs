//! Compiled plans, per device and structure, least recently used evicted;
//! the constant buffers plans take as extra inputs; hit/miss counters per
//! process and per thread.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::Storage;
use crate::device::Device;
use crate::dtype::{DType, HostData};
use crate::error::{Result, lock};
use crate::hash::FastMap;
use crate::ir::Plan;

/// Plans kept per process; a new batch size makes a new plan, so the cache
/// is bounded and evicts the least recently used.
const CACHE_CAPACITY: usize = 64;
/// Constant buffers kept (a loss's seed gradient per dtype and device; a
/// handful in practice).
const CONST_CAPACITY: usize = 64;

/// A compiled plan and the constants it takes as extra inputs.
pub(super) type Compiled = (Arc<Plan>, Arc<Vec<(f64, DType)>>);

struct Entry {
    compiled: Compiled,
    /// The device the plan ran on: told when the plan is evicted.
    device: Device,
}

#[derive(Default)]
struct Cache {
    plans: FastMap<Vec<u64>, Entry>,
    order: VecDeque<Vec<u64>>,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);
static NEXT_PLAN: AtomicU64 = AtomicU64::new(1);
static STATS: Mutex<Stats> = Mutex::new(Stats {
    hits: 0,
    misses: 0,
    evictions: 0,
});
/// (device id, dtype, value bits) of a constant buffer.
type ConstKey = (u64, DType, u64);
/// Constant buffers, oldest first.
static CONSTS: Mutex<VecDeque<(ConstKey, Storage)>> = Mutex::new(VecDeque::new());

thread_local! {
    static THREAD_HITS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Plan-cache statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lookups that found a compiled plan.
    pub hits: u64,
    /// Lookups that lowered a new plan.
    pub misses: u64,
    /// Plans dropped to stay within the cache's capacity (not counted per
    /// thread: always 0 from [`thread_stats`]).
    pub evictions: u64,
}

/// Process-wide plan-cache statistics.
pub fn stats() -> Stats {
    *lock(&STATS)
}

/// Hits and misses of the plan lookups made by the calling thread (tests
/// running in parallel do not disturb each other's counts).
pub fn thread_stats() -> Stats {
    let (hits, misses) = THREAD_HITS.with(|c| c.get());
    Stats {
        hits,
        misses,
        evictions: 0,
    }
}

fn count(hit: bool) {
    let mut s = lock(&STATS);
    let (h, m) = THREAD_HITS.with(|c| c.get());
    if hit {
        s.hits += 1;
        THREAD_HITS.with(|c| c.set((h + 1, m)));
    } else {
        s.misses += 1;
        THREAD_HITS.with(|c| c.set((h, m + 1)));
    }
}

/// The cached plan for `key`, or a new one from `lower` (then cached,
/// evicting the least recently used plan and telling its device).
pub(super) fn lookup_or_lower(
    device: &Device,
    key: Vec<u64>,
    lower: impl FnOnce() -> Result<(Plan, Vec<(f64, DType)>)>,
) -> Result<Compiled> {
    let mut guard = lock(&CACHE);
    let cache = guard.get_or_insert_with(Cache::default);
    if let Some(e) = cache.plans.get(&key) {
        let hit = e.compiled.clone();
        if let Some(pos) = cache.order.iter().position(|k| *k == key)
            && let Some(k) = cache.order.remove(pos)
        {
            cache.order.push_back(k);
        }
        count(true);
        return Ok(hit);
    }
    count(false);
    let (mut plan, consts) = lower()?;
    plan.id = NEXT_PLAN.fetch_add(1, Ordering::Relaxed);
    let compiled = (Arc::new(plan), Arc::new(consts));
    if cache.plans.len() >= CACHE_CAPACITY
        && let Some(old) = cache.order.pop_front()
        && let Some(e) = cache.plans.remove(&old)
    {
        e.device.backend().forget_plan(e.compiled.0.id);
        lock(&STATS).evictions += 1;
    }
    cache.order.push_back(key.clone());
    cache.plans.insert(
        key,
        Entry {
            compiled: compiled.clone(),
            device: device.clone(),
        },
    );
    Ok(compiled)
}

/// A one-element buffer holding `v`, uploaded once per device and dtype.
pub(super) fn constant(device: &Device, dtype: DType, v: f64) -> Result<Storage> {
    let key = (device.id(), dtype, v.to_bits());
    let mut consts = lock(&CONSTS);
    if let Some((_, s)) = consts.iter().find(|(k, _)| *k == key) {
        return Ok(s.clone());
    }
    let s = device.backend().upload(&HostData::from_f64(&[v], dtype))?;
    if consts.len() >= CONST_CAPACITY {
        consts.pop_front();
    }
    consts.push_back((key, s.clone()));
    Ok(s)
}
