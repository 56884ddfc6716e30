//! Plan execution: per-plan cached state (temps, scratch, uniforms, bind
//! groups), host preparation of id-dependent data, and recording of every
//! launch into one command encoder with one submission.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::buffer::{GpuBuffer, Pool, Raw, create_raw};
use super::compile::{self, Bind, Buf, Compiled, Dispatch, Step};
use super::pipelines::{Pipeline, Pipelines};
use super::profile::{self, Timer};
use super::record::{self, Recorder};
use super::{Ctx, host};
use crate::backend::Storage;
use crate::error::{Error, Result};
use crate::schedule::plan::Plan;

/// What a plan keeps between executions.
struct PlanState {
    /// (slots, launches): a cheap guard against a reused plan id.
    sig: (usize, usize),
    compiled: Compiled,
    temps: Vec<Raw>,
    scratch: Vec<Raw>,
    /// One uniform buffer for all launches; (offset, size) per step.
    params: Option<Raw>,
    offsets: Vec<(u64, u64)>,
    /// Private copies for reads of the buffer a launch writes, by (step,
    /// binding).
    alias: HashMap<(usize, usize), Raw>,
    /// Keyed by step index followed by the ids of the bound buffers.
    bind_groups: HashMap<Vec<u64>, wgpu::BindGroup>,
    /// Per step: uid of the ids buffer the host data was prepared from.
    host_seen: Vec<Option<u64>>,
    /// Per output: the buffer it had last time, asked for again.
    out_pref: Vec<Option<u64>>,
    /// Made on the first profiled execution.
    timer: Option<Timer>,
    last_used: u64,
    pool: Weak<Pool>,
}

impl Drop for PlanState {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            let alias = std::mem::take(&mut self.alias).into_values();
            for raw in self
                .temps
                .drain(..)
                .chain(self.scratch.drain(..))
                .chain(alias)
            {
                pool.release(raw);
            }
        }
    }
}

#[derive(Default)]
pub(super) struct Exec {
    pub pipelines: Pipelines,
    plans: HashMap<u64, PlanState>,
    tick: u64,
    /// Per launch of the last profiled execution: label and milliseconds.
    pub last_times: Option<Vec<(String, f64)>>,
}

impl Exec {
    pub fn forget(&mut self, id: u64) {
        self.plans.remove(&id);
    }
}

fn gpu_input(s: &Storage, k: usize) -> Result<&Arc<GpuBuffer>> {
    match s {
        Storage::Gpu(b) => Ok(b),
        Storage::Cpu(_) => Err(Error::invalid(
            "wgpu execute",
            format!("input {k} lives on the CPU; move it to the GPU first"),
        )),
    }
}

fn new_state(cx: &Ctx, plan: &Plan, tick: u64) -> Result<PlanState> {
    let gpu = &cx.gpu;
    let compiled = compile::compile(plan, gpu.limits.max_compute_workgroups_per_dimension)?;
    let temps = compiled
        .temp_bytes
        .iter()
        .map(|&b| cx.pool.acquire(gpu, b, None))
        .collect::<Result<Vec<_>>>()?;
    let scratch = compiled
        .scratch_bytes
        .iter()
        .map(|&b| cx.pool.acquire(gpu, b, None))
        .collect::<Result<Vec<_>>>()?;
    let align = gpu.limits.min_uniform_buffer_offset_alignment.max(16) as u64;
    let mut bytes = Vec::new();
    let mut offsets = vec![(0, 0); compiled.steps.len()];
    for (i, s) in compiled.steps.iter().enumerate() {
        if let Step::Dispatch(d) = s {
            bytes.resize((bytes.len() as u64).next_multiple_of(align) as usize, 0);
            offsets[i] = (bytes.len() as u64, d.params.len() as u64);
            bytes.extend_from_slice(&d.params);
        }
    }
    let params = if bytes.is_empty() {
        None
    } else {
        let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        let raw = create_raw(
            gpu,
            &cx.stats,
            bytes.len().next_multiple_of(16) as u64,
            usage,
            "params",
        )?;
        // Launch parameters depend only on the plan: written once.
        cx.gpu.queue.write_buffer(&raw.buffer, 0, &bytes);
        Some(raw)
    };
    Ok(PlanState {
        sig: (plan.slots.len(), plan.launches.len()),
        host_seen: vec![None; compiled.steps.len()],
        out_pref: vec![None; compiled.outputs.len()],
        timer: None,
        compiled,
        temps,
        scratch,
        params,
        offsets,
        alias: HashMap::new(),
        bind_groups: HashMap::new(),
        last_used: tick,
        pool: Arc::downgrade(&cx.pool),
    })
}

/// The buffers a plan execution binds.
pub(super) struct Bufs<'a> {
    pub(super) inputs: &'a [&'a Arc<GpuBuffer>],
    pub(super) outputs: &'a [Arc<GpuBuffer>],
    pub(super) temps: &'a [Raw],
    pub(super) scratch: &'a [Raw],
}

impl<'a> Bufs<'a> {
    pub(super) fn raw(&self, b: Buf) -> Result<&'a Raw> {
        let missing = || Error::invalid("wgpu execute", format!("no buffer for {b:?}"));
        match b {
            Buf::Input(k) => self.inputs.get(k).ok_or_else(missing)?.raw(),
            Buf::Output(k) => self.outputs.get(k).ok_or_else(missing)?.raw(),
            Buf::Temp(k) => self.temps.get(k).ok_or_else(missing),
            Buf::Scratch(k) => self.scratch.get(k).ok_or_else(missing),
        }
    }
}

pub(super) fn execute(
    ex: &mut Exec,
    cx: &Ctx,
    plan: &Plan,
    inputs: &[Storage],
    max_plans: usize,
    profile: bool,
) -> Result<Vec<Storage>> {
    cx.gpu.check("before execute")?;
    crate::backend::check_inputs(plan, inputs, "wgpu execute")?;
    let ins: Vec<&Arc<GpuBuffer>> = inputs
        .iter()
        .enumerate()
        .map(|(k, s)| gpu_input(s, k))
        .collect::<Result<_>>()?;
    ex.tick += 1;
    let tick = ex.tick;
    let sig = (plan.slots.len(), plan.launches.len());
    if ex.plans.get(&plan.id).is_none_or(|s| s.sig != sig) {
        let st = new_state(cx, plan, tick)?;
        if ex.plans.len() >= max_plans.max(1)
            && let Some(&old) = ex
                .plans
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| id)
        {
            ex.plans.remove(&old);
        }
        ex.plans.insert(plan.id, st);
    }
    let Exec {
        pipelines,
        plans,
        last_times,
        ..
    } = ex;
    let st = plans
        .get_mut(&plan.id)
        .ok_or_else(|| Error::Gpu("plan state vanished".into()))?;
    st.last_used = tick;

    let mut outputs = Vec::with_capacity(st.compiled.outputs.len());
    for (k, &(len, dtype)) in st.compiled.outputs.iter().enumerate() {
        let raw = cx.pool.acquire(&cx.gpu, len as u64 * 4, st.out_pref[k])?;
        st.out_pref[k] = Some(raw.id);
        outputs.push(Arc::new(GpuBuffer::new(raw, len, dtype, None, &cx.pool)));
    }
    let PlanState {
        compiled,
        temps,
        scratch,
        params,
        offsets,
        alias,
        bind_groups,
        host_seen,
        timer,
        ..
    } = st;
    let bufs = Bufs {
        inputs: &ins,
        outputs: &outputs,
        temps,
        scratch,
    };

    // Host work and device objects first, so recording only borrows.
    let mut pipes: Vec<Option<Pipeline>> = Vec::with_capacity(compiled.steps.len());
    for (si, step) in compiled.steps.iter().enumerate() {
        pipes.push(None);
        match step {
            Step::Host(h) => host::prepare(cx, h, &ins, &bufs, &mut host_seen[si])?,
            Step::Dispatch(d) => {
                pipes[si] = Some(pipelines.get(&cx.gpu, &cx.stats, &d.kernel)?);
                let write = bind_raw(&bufs, d, 0)?.map(|r| r.id);
                for j in 1..d.binds.len() {
                    if let Some(r) = bind_raw(&bufs, d, j)?
                        && Some(r.id) == write
                        && !alias.contains_key(&(si, j))
                    {
                        alias.insert((si, j), cx.pool.acquire(&cx.gpu, r.size, None)?);
                    }
                }
            }
            Step::Custom(_) => {}
        }
    }
    if bind_groups.len() > 64 + 4 * compiled.steps.len() {
        bind_groups.clear();
    }
    // Without the device's clock, profiling leaves the plan as it is.
    let period = cx.gpu.timestamp_period.filter(|_| profile);
    let owners: Vec<usize> = match period {
        Some(_) => (compiled.steps.iter().zip(&compiled.launch_of))
            .filter(|(s, _)| matches!(s, Step::Dispatch(_)))
            .map(|(_, &li)| li)
            .collect(),
        None => Vec::new(),
    };
    if period.is_some()
        && timer
            .as_ref()
            .is_none_or(|t| t.queries as usize != 2 * owners.len())
    {
        *timer = Timer::new(cx, owners.len())?;
    }
    let timing = timer.as_ref().filter(|_| period.is_some());
    let mut dispatched = 0u32;

    let mut rec = Recorder::new(cx);
    for (si, step) in compiled.steps.iter().enumerate() {
        match step {
            Step::Host(_) => {}
            Step::Custom(li) => {
                rec.flush();
                host::custom(cx, plan, *li, &bufs)?;
            }
            Step::Dispatch(d) => {
                let write = bind_raw(&bufs, d, 0)?;
                let mut raws: Vec<Option<&Raw>> = Vec::with_capacity(d.binds.len());
                for j in 0..d.binds.len() {
                    let r = bind_raw(&bufs, d, j)?;
                    match (r, alias.get(&(si, j))) {
                        (Some(src), Some(copy)) if j > 0 && Some(src.id) == write.map(|w| w.id) => {
                            rec.copy(src, copy);
                            raws.push(Some(copy));
                        }
                        _ => raws.push(r),
                    }
                }
                let mut key = vec![si as u64];
                key.extend(raws.iter().map(|r| r.map_or(0, |r| r.id)));
                let pipe = pipes[si]
                    .as_ref()
                    .ok_or_else(|| Error::Gpu("pipeline missing".into()))?;
                if !bind_groups.contains_key(&key) {
                    let bg = record::bind_group(cx, pipe, &raws, params.as_ref(), offsets[si])?;
                    bind_groups.insert(key.clone(), bg);
                }
                let bg = bind_groups
                    .get(&key)
                    .ok_or_else(|| Error::Gpu("bind group missing".into()))?;
                match timing {
                    Some(t) => {
                        rec.dispatch_timed(&pipe.pipeline, bg, d.groups, (&t.set, dispatched))
                    }
                    None => rec.dispatch(&pipe.pipeline, bg, d.groups),
                }
                dispatched += 2;
            }
        }
    }
    if let Some(t) = timing {
        rec.resolve(&t.set, t.queries, &t.resolve.buffer);
    }
    rec.flush();
    cx.stats
        .launches
        .fetch_add(plan.launches.len() as u64, Ordering::Relaxed);
    cx.gpu.check("execute")?;
    if profile {
        *last_times = match (timing, period) {
            (Some(t), Some(p)) => Some(profile::per_launch(plan, &owners, &t.read_spans(cx)?, p)),
            // A plan dispatching nothing took no GPU time.
            (None, Some(p)) if owners.is_empty() => Some(profile::per_launch(plan, &[], &[], p)),
            _ => None,
        };
    }
    Ok(outputs.into_iter().map(Storage::Gpu).collect())
}

fn bind_raw<'a>(bufs: &Bufs<'a>, d: &Dispatch, j: usize) -> Result<Option<&'a Raw>> {
    match d.binds.get(j) {
        Some(Bind::Buf(b)) => bufs.raw(*b).map(Some),
        _ => Ok(None),
    }
}
