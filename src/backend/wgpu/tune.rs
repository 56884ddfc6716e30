//! The matmul autotuner. On the first use of a shape class (sizes rounded
//! up to powers of two, and the transposes) on an adapter, it times the
//! candidate variants of `variants::candidates` with GPU timestamps — each
//! as a one-launch plan through the backend's own compile and record path —
//! within a wall-clock budget, and keeps the fastest: in memory, and in a
//! per-adapter file of the on-disk cache, so the next process starts with
//! it. A cache file that cannot be read, or was written for another
//! adapter or driver, is ignored with a warning; a cache that cannot be
//! written is a warning too. Tuning never fails a run: a candidate that
//! fails to build or run is skipped, and with none timed the heuristic's
//! choice stands.
//!
//! Variants differ only in the order of float additions, so a plan's
//! results depend on the choice only through rounding; for a fixed choice
//! (the cache, `DELTAGRAD_TUNE=off`, or a pinned variant) runs repeat bit
//! for bit.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::buffer::GpuBuffer;
use super::ctx::Ctx;
use super::exec::{self, Exec};
use super::variants::{MatmulShape, MatmulVariant, candidates, heuristic};
use crate::backend::Storage;
use crate::dtype::DType;
use crate::error::Result;
use crate::ir::{Kernel, Launch, Plan, Slot, SlotKind};

/// How the backend picks each matmul's variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tuning {
    /// Time the candidates on first use of a shape class; remember the
    /// fastest (in memory, and on disk when a cache folder is set).
    Auto,
    /// The fixed heuristic (`variants::heuristic`): no timing.
    Heuristic,
    /// This variant for every matmul (tests pin one this way). A variant
    /// the adapter cannot run falls back to the heuristic.
    Fixed(MatmulVariant),
}

impl Tuning {
    /// `DELTAGRAD_TUNE`: unset, empty, `auto` or `on`: tune; `off`: the
    /// heuristic; a variant name (`128x128/8x8/k8`, `64x16/4x4/k16/s8`):
    /// that variant. Anything else is a warning, then `Auto`.
    pub fn from_env() -> Tuning {
        let v = std::env::var("DELTAGRAD_TUNE").unwrap_or_default();
        match v.trim() {
            "" | "auto" | "on" => Tuning::Auto,
            "off" => Tuning::Heuristic,
            name => match name.parse::<MatmulVariant>() {
                Ok(v) => Tuning::Fixed(v),
                Err(e) => {
                    eprintln!("deltagrad: DELTAGRAD_TUNE: {e}; tuning instead");
                    Tuning::Auto
                }
            },
        }
    }
}

/// `DELTAGRAD_TUNE_CACHE` (empty or `off`: none), else
/// `$XDG_CACHE_HOME/deltagrad`, else `$HOME/.cache/deltagrad`.
pub fn cache_dir_from_env() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(v) = std::env::var_os("DELTAGRAD_TUNE_CACHE") {
        return (!v.is_empty() && v != "off").then(|| PathBuf::from(v));
    }
    if let Some(x) = var("XDG_CACHE_HOME") {
        return Some(PathBuf::from(x).join("deltagrad"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".cache").join("deltagrad"))
}

/// `DELTAGRAD_TUNE_BUDGET_MS`, else 120 ms per shape class.
pub fn budget_from_env() -> Duration {
    let ms = std::env::var("DELTAGRAD_TUNE_BUDGET_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(120);
    Duration::from_millis(ms)
}

/// How a variant was chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum How {
    /// Timed now: the fastest of `candidates`, at `ms` per launch.
    Tuned {
        /// The winner's time per launch, in milliseconds.
        ms: f64,
        /// How many variants were timed.
        candidates: usize,
    },
    /// Read from the on-disk cache (timed by an earlier process).
    Cached {
        /// The time recorded with it, in milliseconds per launch.
        ms: f64,
    },
    /// The fixed heuristic (tuning off, or nothing could be timed).
    Heuristic,
    /// Pinned by the options or `DELTAGRAD_TUNE`.
    Pinned,
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            How::Tuned { ms, candidates } => {
                write!(f, "tuned: {ms:.4} ms, fastest of {candidates}")
            }
            How::Cached { ms } => write!(f, "tuning cache: {ms:.4} ms"),
            How::Heuristic => f.write_str("heuristic"),
            How::Pinned => f.write_str("pinned"),
        }
    }
}

/// A matmul's variant and how it was chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// The variant that runs.
    pub variant: MatmulVariant,
    /// How it was chosen.
    pub how: How,
}

/// One timed candidate.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The variant timed.
    pub variant: MatmulVariant,
    /// Its time per launch, in milliseconds.
    pub ms: f64,
}

/// The per-backend tuner state: the mode, the choices made so far and the
/// on-disk cache.
pub(super) struct Tuner {
    mode: Tuning,
    budget: Duration,
    limits: wgpu::Limits,
    disk: Option<Disk>,
    /// Choices by shape class.
    chosen: HashMap<String, Choice>,
    /// Seconds spent tuning, and classes tuned (not read from the cache).
    pub spent: Duration,
    pub tuned: usize,
}

impl Tuner {
    pub fn new(
        mode: Tuning,
        budget: Duration,
        limits: wgpu::Limits,
        cache_dir: Option<&Path>,
        info: &wgpu::AdapterInfo,
    ) -> Tuner {
        let disk = match mode {
            Tuning::Auto => cache_dir.map(|d| Disk::new(d, info)),
            _ => None,
        };
        Tuner {
            mode,
            budget,
            limits,
            disk,
            chosen: HashMap::new(),
            spent: Duration::ZERO,
            tuned: 0,
        }
    }

    /// A tuner that pins `v` (the candidates' own plans run with it).
    fn pinned(v: MatmulVariant, limits: wgpu::Limits) -> Tuner {
        Tuner {
            mode: Tuning::Fixed(v),
            budget: Duration::ZERO,
            limits,
            disk: None,
            chosen: HashMap::new(),
            spent: Duration::ZERO,
            tuned: 0,
        }
    }

    /// The variant for `s`, without timing anything (`prepare` tunes).
    pub fn choose(&self, s: &MatmulShape) -> Choice {
        let heur = || Choice {
            variant: heuristic(s, &self.limits),
            how: How::Heuristic,
        };
        match &self.mode {
            Tuning::Fixed(v) if v.fits(&self.limits) => Choice {
                variant: *v,
                how: How::Pinned,
            },
            Tuning::Fixed(_) | Tuning::Heuristic => heur(),
            Tuning::Auto => self.chosen.get(&s.class()).copied().unwrap_or_else(heur),
        }
    }

    /// Makes sure every matmul of `plan` has a choice: from memory, the
    /// disk cache, or by timing the candidates now.
    pub fn prepare(&mut self, cx: &Ctx, plan: &Plan) {
        if self.mode != Tuning::Auto {
            return;
        }
        for l in &plan.launches {
            let Kernel::Matmul {
                m,
                k,
                n,
                trans_a,
                trans_b,
                ..
            } = l.kernel
            else {
                continue;
            };
            let shape = MatmulShape {
                m,
                k,
                n,
                trans_a,
                trans_b,
            };
            if m * n == 0 || self.chosen.contains_key(&shape.class()) {
                continue;
            }
            self.decide(cx, &shape);
        }
    }

    fn decide(&mut self, cx: &Ctx, shape: &MatmulShape) {
        let class = shape.class();
        if let Some((variant, ms)) = self.disk.as_mut().and_then(|d| d.lookup(&class))
            && variant.fits(&self.limits)
        {
            let how = How::Cached { ms };
            self.chosen.insert(class, Choice { variant, how });
            return;
        }
        let start = Instant::now();
        let cands = candidates(shape, &self.limits);
        let timings = time_candidates(cx, shape, &cands, self.budget);
        self.spent += start.elapsed();
        self.tuned += 1;
        let best = timings.iter().min_by(|a, b| a.ms.total_cmp(&b.ms));
        let choice = match best {
            Some(t) => Choice {
                variant: t.variant,
                how: How::Tuned {
                    ms: t.ms,
                    candidates: timings.len(),
                },
            },
            None => Choice {
                variant: heuristic(shape, &self.limits),
                how: How::Heuristic,
            },
        };
        if let (Some(d), How::Tuned { ms, candidates }) = (&mut self.disk, choice.how) {
            d.store(&class, choice.variant, ms, candidates);
        }
        self.chosen.insert(class, choice);
    }
}

/// A plan of one matmul of `shape` (inputs a, b; output c), as a training
/// step would run it, without an epilogue.
pub(super) fn one_matmul(shape: &MatmulShape) -> Plan {
    let slot = |len, kind| Slot {
        len,
        dtype: DType::F32,
        kind,
    };
    let (m, k, n) = (shape.m, shape.k, shape.n);
    Plan {
        id: 1,
        slots: vec![
            slot(m * k, SlotKind::Input(0)),
            slot(k * n, SlotKind::Input(1)),
            slot(m * n, SlotKind::Output(0)),
        ],
        launches: vec![Launch {
            kernel: Kernel::Matmul {
                m,
                k,
                n,
                a: 0,
                b: 1,
                trans_a: shape.trans_a,
                trans_b: shape.trans_b,
                epilogue: None,
                out: 2,
            },
            fused: vec!["tuning".into()],
        }],
        n_inputs: 2,
        n_outputs: 1,
        n_temp_buffers: 0,
    }
}

/// Times `cands` on `shape`, in order, until `budget` (wall clock,
/// pipeline builds included) is spent; the first is always timed. Each
/// candidate runs once to build and warm up, then once more, and up to
/// three more times within its share of the budget; its time is the fastest run's GPU time
/// (timestamps), or wall-clock time of submit and wait without them.
pub(super) fn time_candidates(
    cx: &Ctx,
    shape: &MatmulShape,
    cands: &[MatmulVariant],
    budget: Duration,
) -> Vec<Timing> {
    let start = Instant::now();
    let plan = one_matmul(shape);
    let input = |len: usize| -> Result<Storage> {
        let raw = cx.pool.acquire(&cx.gpu, (len * 4) as u64, None)?;
        Ok(Storage::new(Arc::new(GpuBuffer::new(
            raw,
            len,
            DType::F32,
            None,
            &cx.pool,
        ))))
    };
    let inputs = match (input(shape.m * shape.k), input(shape.k * shape.n)) {
        (Ok(a), Ok(b)) => vec![a, b],
        _ => return Vec::new(),
    };
    let share = budget / cands.len().max(1) as u32;
    let mut out = Vec::new();
    for (i, &v) in cands.iter().enumerate() {
        if i > 0 && start.elapsed() >= budget {
            break;
        }
        let mut ex = Exec::new(2, Tuner::pinned(v, cx.gpu.limits.clone()));
        let began = Instant::now();
        let mut best = f64::INFINITY;
        for rep in 0..5 {
            if rep > 1 && began.elapsed() >= share {
                break;
            }
            match run_once(cx, &mut ex, &plan, &inputs) {
                // The first run builds the pipeline and warms up.
                Ok(ms) if rep > 0 => best = best.min(ms),
                Ok(_) => {}
                Err(_) => {
                    best = f64::INFINITY;
                    break;
                }
            }
        }
        if best.is_finite() {
            out.push(Timing {
                variant: v,
                ms: best,
            });
        }
    }
    out
}

/// One execution of the one-matmul plan: GPU milliseconds.
fn run_once(cx: &Ctx, ex: &mut Exec, plan: &Plan, inputs: &[Storage]) -> Result<f64> {
    let profile = cx.gpu.timestamp_period.is_some();
    let t = Instant::now();
    let outs = exec::execute(ex, cx, plan, inputs, 2, profile)?;
    cx.gpu.wait(None)?;
    let wall = t.elapsed().as_secs_f64() * 1e3;
    drop(outs);
    Ok(match ex.last_times.take() {
        Some(times) if profile => times.iter().map(|(_, ms)| ms).sum(),
        _ => wall,
    })
}

// ------------------------------------------------------------- disk cache

/// Version of the cache file's layout; a file of another version is
/// ignored (and replaced on the next write).
const FORMAT: &str = "deltagrad-tune/1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Adapter {
    name: String,
    vendor: u32,
    device: u32,
    driver: String,
    driver_info: String,
    backend: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    variant: String,
    ms: f64,
    candidates: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    format: String,
    adapter: Adapter,
    entries: BTreeMap<String, Entry>,
}

/// The on-disk cache of one adapter and driver: one JSON file, named by a
/// hash of the adapter's identity, in the cache folder.
struct Disk {
    path: PathBuf,
    adapter: Adapter,
    /// Read lazily, once.
    entries: Option<BTreeMap<String, Entry>>,
}

/// Warn about an unwritable cache once per process.
static WRITE_WARNED: AtomicBool = AtomicBool::new(false);

impl Disk {
    fn new(dir: &Path, info: &wgpu::AdapterInfo) -> Disk {
        let adapter = Adapter {
            name: info.name.clone(),
            vendor: info.vendor,
            device: info.device,
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            backend: format!("{:?}", info.backend),
        };
        let id = serde_json::to_string(&adapter).unwrap_or_default();
        let hex = format!("{:016x}", fnv1a(format!("{FORMAT}\n{id}").as_bytes()));
        Disk {
            path: dir.join(format!("tune-{hex}.json")),
            adapter,
            entries: None,
        }
    }

    /// The file's entries, or `None` (with a warning) for a file that is
    /// corrupt or belongs to another adapter, driver or format. A missing
    /// file is an empty cache.
    fn read(&self, warn: bool) -> BTreeMap<String, Entry> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
            Err(e) => {
                if warn {
                    eprintln!(
                        "deltagrad: ignoring the tuning cache {}: {e}",
                        self.path.display()
                    );
                }
                return BTreeMap::new();
            }
        };
        match serde_json::from_str::<CacheFile>(&text) {
            Ok(f) if f.format == FORMAT && f.adapter == self.adapter => f.entries,
            Ok(f) => {
                if warn {
                    eprintln!(
                        "deltagrad: ignoring the tuning cache {}: written for {} ({} {}), format {}; this is {} ({} {}), format {FORMAT}",
                        self.path.display(),
                        f.adapter.name,
                        f.adapter.driver,
                        f.adapter.driver_info,
                        f.format,
                        self.adapter.name,
                        self.adapter.driver,
                        self.adapter.driver_info
                    );
                }
                BTreeMap::new()
            }
            Err(e) => {
                if warn {
                    eprintln!(
                        "deltagrad: ignoring the corrupt tuning cache {}: {e}",
                        self.path.display()
                    );
                }
                BTreeMap::new()
            }
        }
    }

    fn lookup(&mut self, class: &str) -> Option<(MatmulVariant, f64)> {
        if self.entries.is_none() {
            self.entries = Some(self.read(true));
        }
        let e = self.entries.as_ref()?.get(class)?;
        Some((e.variant.parse().ok()?, e.ms))
    }

    /// Adds an entry and rewrites the file atomically (a temporary file
    /// renamed over it), merged with what other processes wrote since.
    fn store(&mut self, class: &str, v: MatmulVariant, ms: f64, candidates: usize) {
        let entry = Entry {
            variant: v.to_string(),
            ms,
            candidates,
        };
        let mut entries = self.read(false);
        entries.insert(class.to_string(), entry.clone());
        self.entries
            .get_or_insert_with(BTreeMap::new)
            .insert(class.to_string(), entry);
        let file = CacheFile {
            format: FORMAT.to_string(),
            adapter: self.adapter.clone(),
            entries,
        };
        if let Err(e) = write_atomic(&self.path, &file)
            && !WRITE_WARNED.swap(true, Ordering::Relaxed)
        {
            eprintln!(
                "deltagrad: cannot write the tuning cache {}: {e} (continuing without it)",
                self.path.display()
            );
        }
    }
}

fn write_atomic(path: &Path, file: &CacheFile) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(file).map_err(std::io::Error::other)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = path.with_extension(format!("json.tmp-{}-{nanos}", std::process::id()));
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// FNV-1a, 64 bits: a stable name for an adapter's cache file (the file
/// itself records the adapter in full, so a collision is caught on read).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(driver_info: &str) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: "Test GPU".into(),
            driver: "testdrv".into(),
            driver_info: driver_info.into(),
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::DiscreteGpu, wgpu::Backend::Vulkan)
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("deltagrad-tune-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn disk_cache_round_trips_and_rejects_foreign_and_corrupt_files() {
        let dir = scratch("disk");
        let v: MatmulVariant = "64x16/4x4/k16/s8".parse().unwrap();
        let mut a = Disk::new(&dir, &info("1.0"));
        assert_eq!(a.lookup("m128-k1024-n8-tn"), None);
        a.store("m128-k1024-n8-tn", v, 0.25, 9);
        // A new process sees it.
        let mut b = Disk::new(&dir, &info("1.0"));
        assert_eq!(b.lookup("m128-k1024-n8-tn"), Some((v, 0.25)));
        // Another driver version: another file, nothing in it.
        let mut c = Disk::new(&dir, &info("2.0"));
        assert_ne!(c.path, a.path);
        assert_eq!(c.lookup("m128-k1024-n8-tn"), None);
        // A foreign file under our name (copied from another machine) is
        // ignored, then replaced by the next write.
        std::fs::copy(&a.path, &c.path).unwrap();
        let mut c = Disk::new(&dir, &info("2.0"));
        assert_eq!(c.lookup("m128-k1024-n8-tn"), None);
        c.store("m1-k1-n1-nn", MatmulVariant::DEFAULT, 0.01, 1);
        let mut c = Disk::new(&dir, &info("2.0"));
        assert_eq!(
            c.lookup("m1-k1-n1-nn"),
            Some((MatmulVariant::DEFAULT, 0.01))
        );
        // Corrupt: ignored.
        std::fs::write(&a.path, "{ not json").unwrap();
        let mut d = Disk::new(&dir, &info("1.0"));
        assert_eq!(d.lookup("m128-k1024-n8-tn"), None);
        d.store("m2-k2-n2-nn", MatmulVariant::DEFAULT, 0.02, 1);
        let text = std::fs::read_to_string(&a.path).unwrap();
        assert!(
            text.contains(FORMAT) && text.contains("m2-k2-n2-nn"),
            "{text}"
        );
        // No temporary files left behind.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_cache_is_not_an_error() {
        let dir = scratch("unwritable");
        std::fs::write(&dir, "a file where the folder should be").unwrap();
        let mut d = Disk::new(&dir, &info("1.0"));
        d.store("m1-k1-n1-nn", MatmulVariant::DEFAULT, 0.01, 1);
        // Still answers from memory.
        assert_eq!(
            d.lookup("m1-k1-n1-nn"),
            Some((MatmulVariant::DEFAULT, 0.01))
        );
        let _ = std::fs::remove_file(&dir);
    }
}
