//! Plan execution: per-plan cached state (temps, scratch, uniforms, bind
//! groups), host preparation of id-dependent data, and recording of every
//! launch into one command encoder with one submission.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::buffer::{GpuBuffer, Pool, Raw, create_raw, gpu_buffer};
use super::choice::{Choice, Tuner};
use super::compile::{self, Bind, Bufs, Compiled, Dispatch, Env, Step};
use super::ctx::Ctx;
use super::host;
use super::pipelines::{Pipeline, Pipelines};
use super::profile::{self, Timer};
use super::record::{self, Recorder};
use super::variants::MatmulShape;
use crate::backend::Storage;
use crate::error::{Error, Result};
use crate::ir::Plan;

/// What a plan keeps between executions.
struct PlanState {
    /// (slots, launches): a cheap guard against a reused plan id.
    sig: (usize, usize),
    fixed: Fixed,
    caches: Caches,
    /// Per output: the buffer it had last time, asked for again.
    out_pref: Vec<Option<u64>>,
    /// Made on the first profiled execution.
    timer: Option<Timer>,
    last_used: u64,
    pool: Weak<Pool>,
}

/// (offset, size) of each step's parameters in the uniform buffer.
type Offsets = Vec<(u64, u64)>;

/// Made once per plan.
struct Fixed {
    compiled: Compiled,
    temps: Vec<Raw>,
    scratch: Vec<Raw>,
    /// One uniform buffer for all launches; (offset, size) per step.
    params: Option<Raw>,
    offsets: Vec<(u64, u64)>,
}

/// Filled as executions need them.
#[derive(Default)]
struct Caches {
    /// Private copies for reads of the buffer a launch writes, by (step,
    /// binding).
    alias: HashMap<(usize, usize), Raw>,
    /// Keyed by step index and pipeline, then the ids of the bound buffers.
    bind_groups: HashMap<Vec<u64>, wgpu::BindGroup>,
    /// Per step: uid of the ids buffer the host data was prepared from.
    host_seen: Vec<Option<u64>>,
}

impl Drop for PlanState {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            let alias = std::mem::take(&mut self.caches.alias).into_values();
            for raw in self
                .fixed
                .temps
                .drain(..)
                .chain(self.fixed.scratch.drain(..))
                .chain(alias)
            {
                pool.release(raw);
            }
        }
    }
}

pub(super) struct Exec {
    pub pipelines: Pipelines,
    plans: HashMap<u64, PlanState>,
    tick: u64,
    /// Per launch of the last profiled execution: label and milliseconds.
    pub last_times: Option<Vec<(String, f64)>>,
    /// Each matmul's variant.
    pub tuner: Tuner,
    /// Gives the tuner a choice for every matmul of a plan (`tune::prepare`,
    /// passed in because tuning runs plans through this executor).
    tune: Tune,
}

/// Gives the tuner a choice for every matmul of a plan.
pub(super) type Tune = fn(&mut Tuner, &Ctx, &Plan);

impl Exec {
    pub fn new(max_pipelines: usize, tuner: Tuner, tune: Tune) -> Exec {
        Exec {
            pipelines: Pipelines::new(max_pipelines),
            plans: HashMap::new(),
            tick: 0,
            last_times: None,
            tuner,
            tune,
        }
    }

    /// The per-launch notes of `plan` as it would run now (tuning its
    /// matmuls first if needed), for `explain`.
    pub fn notes(&mut self, cx: &Ctx, plan: &Plan) -> Result<Vec<String>> {
        (self.tune)(&mut self.tuner, cx, plan);
        let tuner = &self.tuner;
        let choose = |s: &MatmulShape| tuner.choose(s);
        Ok(compile::compile(plan, &env(cx, &choose))?.notes)
    }

    pub fn forget(&mut self, id: u64) {
        self.plans.remove(&id);
    }
}

fn env<'a>(cx: &Ctx, choose: &'a dyn Fn(&MatmulShape) -> Choice) -> Env<'a> {
    Env {
        max_groups: cx.gpu.limits.max_compute_workgroups_per_dimension,
        subgroups: cx.gpu.subgroups,
        choose,
    }
}

fn new_state(cx: &Ctx, plan: &Plan, tick: u64, env: &Env<'_>) -> Result<PlanState> {
    let gpu = &cx.gpu;
    let compiled = compile::compile(plan, env)?;
    let acquire = |sizes: &[u64]| -> Result<Vec<Raw>> {
        sizes
            .iter()
            .map(|&b| cx.pool.acquire(gpu, b, None))
            .collect()
    };
    let temps = acquire(&compiled.temp_bytes)?;
    let scratch = acquire(&compiled.scratch_bytes)?;
    let (params, offsets) = upload_params(cx, &compiled)?;
    Ok(PlanState {
        sig: (plan.slots.len(), plan.launches.len()),
        caches: Caches {
            host_seen: vec![None; compiled.steps.len()],
            ..Caches::default()
        },
        out_pref: vec![None; compiled.outputs.len()],
        timer: None,
        fixed: Fixed {
            compiled,
            temps,
            scratch,
            params,
            offsets,
        },
        last_used: tick,
        pool: Arc::downgrade(&cx.pool),
    })
}

/// Every dispatch's uniform parameters in one buffer, written once: they
/// depend only on the plan. Returns the buffer and (offset, size) per step.
fn upload_params(cx: &Ctx, compiled: &Compiled) -> Result<(Option<Raw>, Offsets)> {
    let align = cx.gpu.limits.min_uniform_buffer_offset_alignment.max(16) as u64;
    let mut bytes = Vec::new();
    let mut offsets = vec![(0, 0); compiled.steps.len()];
    for (i, s) in compiled.steps.iter().enumerate() {
        if let Step::Dispatch(d) = s {
            bytes.resize((bytes.len() as u64).next_multiple_of(align) as usize, 0);
            offsets[i] = (bytes.len() as u64, d.params.len() as u64);
            bytes.extend_from_slice(&d.params);
        }
    }
    if bytes.is_empty() {
        return Ok((None, offsets));
    }
    let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
    let size = bytes.len().next_multiple_of(16) as u64;
    let raw = create_raw(&cx.gpu, &cx.stats, size, usage, "params")?;
    cx.gpu.queue.write_buffer(&raw.buffer, 0, &bytes);
    Ok((Some(raw), offsets))
}

/// The plan's state, made (and the least recently used one evicted) on
/// first use.
fn state_for<'a>(
    plans: &'a mut HashMap<u64, PlanState>,
    cx: &Ctx,
    plan: &Plan,
    tick: u64,
    max_plans: usize,
    tuner: &mut Tuner,
    tune: Tune,
) -> Result<&'a mut PlanState> {
    let sig = (plan.slots.len(), plan.launches.len());
    if plans.get(&plan.id).is_none_or(|s| s.sig != sig) {
        // First run of this plan: tune its matmuls' shape classes now.
        tune(tuner, cx, plan);
        let tuner = &*tuner;
        let choose = |s: &MatmulShape| tuner.choose(s);
        let st = new_state(cx, plan, tick, &env(cx, &choose))?;
        if plans.len() >= max_plans.max(1)
            && let Some(&old) = plans
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| id)
        {
            plans.remove(&old);
        }
        plans.insert(plan.id, st);
    }
    let st = plans
        .get_mut(&plan.id)
        .ok_or_else(|| Error::Gpu("plan state vanished".into()))?;
    st.last_used = tick;
    Ok(st)
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
    let ins: Vec<Arc<GpuBuffer>> = inputs
        .iter()
        .enumerate()
        .map(|(k, s)| gpu_buffer(s, &format!("input {k}")))
        .collect::<Result<_>>()?;
    ex.tick += 1;
    let Exec {
        pipelines,
        plans,
        last_times,
        tick,
        tuner,
        tune,
    } = ex;
    let st = state_for(plans, cx, plan, *tick, max_plans, tuner, *tune)?;
    let outputs = acquire_outputs(cx, st)?;
    let PlanState {
        fixed,
        caches,
        timer,
        ..
    } = st;
    let bufs = Bufs {
        inputs: &ins,
        outputs: &outputs,
        temps: &fixed.temps,
        scratch: &fixed.scratch,
    };
    // Host work and device objects first, so recording only borrows.
    let pipes = prepare(cx, pipelines, fixed, caches, &ins, &bufs)?;
    if caches.bind_groups.len() > 64 + 4 * fixed.compiled.steps.len() {
        caches.bind_groups.clear();
    }
    let (period, owners) = profiling(cx, &fixed.compiled, timer, profile)?;
    let timing = timer.as_ref().filter(|_| period.is_some());
    let dispatches = record(cx, plan, fixed, caches, &bufs, &pipes, timing)?;
    cx.stats
        .launches
        .fetch_add(plan.launches.len() as u64, Ordering::Relaxed);
    cx.stats.dispatches.fetch_add(dispatches, Ordering::Relaxed);
    cx.gpu.check("execute")?;
    if profile {
        *last_times = match (timing, period) {
            (Some(t), Some(p)) => Some(profile::per_launch(
                plan,
                &fixed.compiled.notes,
                &owners,
                &t.read_spans(cx)?,
                p,
            )),
            // A plan dispatching nothing took no GPU time.
            (None, Some(p)) if owners.is_empty() => Some(profile::per_launch(
                plan,
                &fixed.compiled.notes,
                &[],
                &[],
                p,
            )),
            _ => None,
        };
    }
    Ok(outputs.into_iter().map(|b| Storage::new(b)).collect())
}

/// New output buffers, preferring the ones the plan's outputs had last
/// time (a warm step then reuses pooled buffers and bind groups).
fn acquire_outputs(cx: &Ctx, st: &mut PlanState) -> Result<Vec<Arc<GpuBuffer>>> {
    let mut outputs = Vec::with_capacity(st.fixed.compiled.outputs.len());
    for (k, &(len, dtype)) in st.fixed.compiled.outputs.iter().enumerate() {
        let raw = cx.pool.acquire(&cx.gpu, len as u64 * 4, st.out_pref[k])?;
        st.out_pref[k] = Some(raw.id);
        outputs.push(Arc::new(GpuBuffer::new(raw, len, dtype, None, &cx.pool)));
    }
    Ok(outputs)
}

/// Runs each step's host preparation, fetches (or builds) each dispatch's
/// pipeline, and makes a private copy buffer for every binding that reads
/// the buffer its launch writes.
fn prepare(
    cx: &Ctx,
    pipelines: &mut Pipelines,
    fixed: &Fixed,
    caches: &mut Caches,
    ins: &[Arc<GpuBuffer>],
    bufs: &Bufs<'_>,
) -> Result<Vec<Option<Pipeline>>> {
    let mut pipes = Vec::with_capacity(fixed.compiled.steps.len());
    for (si, step) in fixed.compiled.steps.iter().enumerate() {
        pipes.push(None);
        match step {
            Step::Host(h) => host::prepare(cx, h, ins, bufs, &mut caches.host_seen[si])?,
            Step::Dispatch(d) => {
                pipes[si] = Some(pipelines.get(&cx.gpu, &cx.stats, &d.kernel)?);
                let write = bind_raw(bufs, d, 0)?.map(|r| r.id);
                for j in 1..d.binds.len() {
                    if let Some(r) = bind_raw(bufs, d, j)?
                        && Some(r.id) == write
                        && !caches.alias.contains_key(&(si, j))
                    {
                        caches
                            .alias
                            .insert((si, j), cx.pool.acquire(&cx.gpu, r.size, None)?);
                    }
                }
            }
            Step::Custom(_) => {}
        }
    }
    Ok(pipes)
}

/// The launch each dispatch belongs to, in dispatch order.
/// When profiling, the device's tick length and the launch of each timed
/// dispatch, with `timer` sized for them. Without the device's clock,
/// profiling leaves the plan as it is.
fn profiling(
    cx: &Ctx,
    compiled: &Compiled,
    timer: &mut Option<Timer>,
    profile: bool,
) -> Result<(Option<f64>, Vec<usize>)> {
    let period = cx.gpu.timestamp_period.filter(|_| profile);
    let owners = match period {
        Some(_) => timed_launches(compiled),
        None => Vec::new(),
    };
    if period.is_some()
        && timer
            .as_ref()
            .is_none_or(|t| t.queries as usize != 2 * owners.len())
    {
        *timer = Timer::new(cx, owners.len())?;
    }
    Ok((period, owners))
}

fn timed_launches(compiled: &Compiled) -> Vec<usize> {
    (compiled.steps.iter().zip(&compiled.launch_of))
        .filter(|(s, _)| matches!(s, Step::Dispatch(_)))
        .map(|(_, &li)| li)
        .collect()
}

/// Records every step into one encoder (custom ops flush it and run on the
/// host) and submits. Returns the number of dispatches recorded.
fn record(
    cx: &Ctx,
    plan: &Plan,
    fixed: &Fixed,
    caches: &mut Caches,
    bufs: &Bufs<'_>,
    pipes: &[Option<Pipeline>],
    timing: Option<&Timer>,
) -> Result<u64> {
    let mut rec = Recorder::new(cx);
    let mut dispatched = 0u32;
    for (si, step) in fixed.compiled.steps.iter().enumerate() {
        match step {
            Step::Host(_) => {}
            Step::Custom(li) => {
                rec.flush();
                host::custom(cx, plan, *li, bufs)?;
            }
            Step::Dispatch(d) => {
                let raws = bound_raws(&mut rec, &caches.alias, bufs, d, si)?;
                let pipe = pipes[si]
                    .as_ref()
                    .ok_or_else(|| Error::Gpu("pipeline missing".into()))?;
                let mut key = vec![si as u64, pipe.uid];
                key.extend(raws.iter().map(|r| r.map_or(0, |r| r.id)));
                if !caches.bind_groups.contains_key(&key) {
                    let (params, offset) = (fixed.params.as_ref(), fixed.offsets[si]);
                    let bg = record::bind_group(cx, pipe, &raws, params, offset)?;
                    caches.bind_groups.insert(key.clone(), bg);
                }
                let bg = caches
                    .bind_groups
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
    Ok(u64::from(dispatched / 2))
}

/// The buffers a dispatch binds, in binding order (`None` for the uniform
/// parameters); a read of the written buffer goes through its private copy,
/// refreshed just before.
fn bound_raws<'a>(
    rec: &mut Recorder<'_>,
    alias: &'a HashMap<(usize, usize), Raw>,
    bufs: &Bufs<'a>,
    d: &Dispatch,
    si: usize,
) -> Result<Vec<Option<&'a Raw>>> {
    let write = bind_raw(bufs, d, 0)?;
    let mut raws: Vec<Option<&Raw>> = Vec::with_capacity(d.binds.len());
    for j in 0..d.binds.len() {
        let r = bind_raw(bufs, d, j)?;
        match (r, alias.get(&(si, j))) {
            (Some(src), Some(copy)) if j > 0 && Some(src.id) == write.map(|w| w.id) => {
                rec.copy(src, copy);
                raws.push(Some(copy));
            }
            _ => raws.push(r),
        }
    }
    Ok(raws)
}

fn bind_raw<'a>(bufs: &Bufs<'a>, d: &Dispatch, j: usize) -> Result<Option<&'a Raw>> {
    match d.binds.get(j) {
        Some(Bind::Buf(b)) => bufs.raw(*b).map(Some),
        _ => Ok(None),
    }
}
