//! What the matmul tuner decides and remembers: the tuning mode (from the
//! options or `DELTAGRAD_TUNE`), each shape class's chosen variant and how
//! it was chosen. The timing itself is `tune`'s, which runs candidate plans
//! through the executor; this module sits below the executor, which asks
//! it for each matmul's variant.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::tune_cache::Disk;
use super::variants::{MatmulShape, MatmulVariant, candidates, heuristic};
use crate::ir::Plan;

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
    pub fn pinned(v: MatmulVariant, limits: wgpu::Limits) -> Tuner {
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

    /// The matmul shapes of `plan` whose class has no choice yet (none
    /// unless tuning is on).
    pub fn missing(&self, plan: &Plan) -> Vec<MatmulShape> {
        if self.mode != Tuning::Auto {
            return Vec::new();
        }
        let mut out: Vec<MatmulShape> = Vec::new();
        for shape in plan
            .launches
            .iter()
            .filter_map(|l| MatmulShape::of(&l.kernel))
        {
            let class = shape.class();
            if shape.m * shape.n == 0
                || self.chosen.contains_key(&class)
                || out.iter().any(|s| s.class() == class)
            {
                continue;
            }
            out.push(shape);
        }
        out
    }

    /// Takes `shape`'s choice from the disk cache, if it holds one this
    /// adapter can run.
    pub fn take_cached(&mut self, shape: &MatmulShape) -> bool {
        let class = shape.class();
        match self.disk.as_mut().and_then(|d| d.lookup(&class)) {
            Some((variant, ms)) if variant.fits(&self.limits) => {
                let how = How::Cached { ms };
                self.chosen.insert(class, Choice { variant, how });
                true
            }
            _ => false,
        }
    }

    /// The candidates to time for `shape`, and the time budget for them.
    pub fn candidates(&self, shape: &MatmulShape) -> (Vec<MatmulVariant>, Duration) {
        (candidates(shape, &self.limits), self.budget)
    }

    /// Keeps the fastest of `timings` for `shape`'s class (the heuristic's
    /// choice if none was timed), in memory and on disk; `spent` is the
    /// time the timing took.
    pub fn record(&mut self, shape: &MatmulShape, timings: &[Timing], spent: Duration) {
        self.spent += spent;
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
        let class = shape.class();
        if let (Some(d), How::Tuned { ms, candidates }) = (&mut self.disk, choice.how) {
            d.store(&class, choice.variant, ms, candidates);
        }
        self.chosen.insert(class, choice);
    }
}
