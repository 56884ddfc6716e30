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

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::buffer::GpuBuffer;
use super::choice::Tuner;
pub use super::choice::{Choice, How, Timing, Tuning};
use super::ctx::Ctx;
use super::exec::{self, Exec};
use super::variants::{MatmulShape, MatmulVariant};
use crate::backend::Storage;
use crate::dtype::DType;
use crate::error::Result;
use crate::ir::{Kernel, Launch, Plan, Slot, SlotKind};

/// Makes sure every matmul of `plan` has a choice: from memory, the disk
/// cache, or by timing the candidates now. The executor calls it on a
/// plan's first run.
pub(super) fn prepare(tuner: &mut Tuner, cx: &Ctx, plan: &Plan) {
    for shape in tuner.missing(plan) {
        if tuner.take_cached(&shape) {
            continue;
        }
        let start = Instant::now();
        let (cands, budget) = tuner.candidates(&shape);
        let timings = time_candidates(cx, &shape, &cands, budget);
        tuner.record(&shape, &timings, start.elapsed());
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
        let mut ex = Exec::new(2, Tuner::pinned(v, cx.gpu.limits.clone()), prepare);
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
