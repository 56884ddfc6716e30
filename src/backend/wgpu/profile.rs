//! Per-launch GPU time from timestamp queries. While profiling, every
//! dispatch gets its own compute pass stamped at its start and end: the
//! device's clock is the only one that sees where a submission's time goes
//! (host timers see the submission as a whole).

use super::buffer::{Raw, create_raw};
use super::ctx::Ctx;
use crate::error::{Error, Result};
use crate::ir::Plan;

/// A plan's query set and the buffer it resolves into, kept with the plan
/// so a warm profiled step allocates nothing.
pub(super) struct Timer {
    pub set: wgpu::QuerySet,
    pub resolve: Raw,
    /// Two per dispatch: start and end.
    pub queries: u32,
}

impl Timer {
    /// `None` when the plan has more dispatches than one query set holds;
    /// such a plan then runs unprofiled rather than failing.
    pub fn new(cx: &Ctx, dispatches: usize) -> Result<Option<Timer>> {
        let Some(queries) = u32::try_from(2 * dispatches)
            .ok()
            .filter(|&q| q > 0 && q <= wgpu::QUERY_SET_MAX_QUERIES)
        else {
            return Ok(None);
        };
        let set = cx.gpu.scoped("creating a timestamp query set", || {
            cx.gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("launch timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: queries,
            })
        })?;
        let usage = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
        let bytes = u64::from(queries) * u64::from(wgpu::QUERY_SIZE);
        let resolve = create_raw(&cx.gpu, &cx.stats, bytes, usage, "timestamps")?;
        Ok(Some(Timer {
            set,
            resolve,
            queries,
        }))
    }

    /// Reads the resolved stamps back (waits for the device) and returns
    /// the ticks each dispatch took, in dispatch order.
    pub fn read_spans(&self, cx: &Ctx) -> Result<Vec<u64>> {
        let bytes = u64::from(self.queries) * u64::from(wgpu::QUERY_SIZE);
        let raw = cx.read_raw(&self.resolve, bytes)?;
        if raw.len() as u64 != bytes {
            return Err(Error::Gpu("short read of the timestamp buffer".into()));
        }
        let stamps: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        // Some drivers stamp passes out of order at this granularity; a
        // negative span means "too short to see", not a huge one.
        Ok(stamps
            .chunks_exact(2)
            .map(|p| p[1].saturating_sub(p[0]))
            .collect())
    }
}

/// One entry per launch: its label and the milliseconds of its dispatches
/// (0 for launches that ran on the host or dispatched nothing).
/// `owners[i]` is the launch of the i-th dispatch; `period` is ns per tick.
pub(super) fn per_launch(
    plan: &Plan,
    notes: &[String],
    owners: &[usize],
    spans: &[u64],
    period: f64,
) -> Vec<(String, f64)> {
    let mut ms = vec![0.0; plan.launches.len()];
    for (&li, &ticks) in owners.iter().zip(spans) {
        if let Some(t) = ms.get_mut(li) {
            *t += ticks as f64 * period / 1e6;
        }
    }
    plan.launches
        .iter()
        .enumerate()
        .map(|(i, l)| l.label(notes.get(i).map_or("", String::as_str)))
        .zip(ms)
        .collect()
}
