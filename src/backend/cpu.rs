//! The CPU reference backend, f32 and f64: plain loops split over a
//! thread pool, and matmul through a strided GEMM (transposes are free):
//! the crate's own kernels for f32 where the host has AVX-512 or AVX2 +
//! FMA, `matrixmultiply` elsewhere (`gemm`).
//!
//! Results are bit-identical for any thread count: work is split only
//! where each output element's arithmetic does not depend on the split
//! (see `par`). Output buffers come from a pool, so a warmed-up step
//! allocates no buffer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Backend, Counters, DeviceBuffer, Storage};
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result, lock};
use crate::ir::{Kernel, Plan, SlotKind};

mod access;
mod balance;
mod blocks;
mod buffers;
mod elementwise;
mod gemm;
mod kernels;
mod losses;
mod par;
#[cfg(target_arch = "x86_64")]
mod sgemm;
mod transpose;

pub use buffers::CpuBuffer;
pub use gemm::Gemm;

/// The kernel behind f32 products on this host: `avx512`, `avx2` (the
/// crate's own) or `matrixmultiply`; `DELTAGRAD_CPU_GEMM` may choose.
pub fn f32_gemm_kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        sgemm::Isa::name(sgemm::Isa::chosen())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "matrixmultiply"
    }
}

impl DeviceBuffer for CpuBuffer {
    fn len(&self) -> usize {
        self.elements()
    }
    fn dtype(&self) -> DType {
        self.element_type()
    }
    fn host_ids(&self) -> Option<Arc<Vec<u32>>> {
        match &*self.read() {
            HostData::U32(v) => Some(Arc::new(v.clone())),
            _ => None,
        }
    }
}

/// The reference backend: a thread pool, a buffer pool and counters.
#[derive(Debug)]
pub struct CpuBackend {
    pool: par::Pool,
    buffers: buffers::BufferPool,
    launches: AtomicU64,
    executions: AtomicU64,
    /// Whether `execute` times each launch (`Backend::set_profiling`).
    profiling: AtomicBool,
    /// Per launch of the last profiled execution: label and milliseconds.
    last_times: Mutex<Option<Vec<(String, f64)>>>,
}

impl Default for CpuBackend {
    fn default() -> CpuBackend {
        CpuBackend::new()
    }
}

impl CpuBackend {
    /// A backend on the calling thread only (one thread).
    pub fn new() -> CpuBackend {
        CpuBackend::build(par::Pool::single())
    }

    /// A backend spreading work over `threads` threads; 0 is an error, as
    /// is a thread the operating system refuses to start.
    pub fn with_threads(threads: usize) -> Result<CpuBackend> {
        Ok(CpuBackend::build(par::Pool::new(threads)?))
    }

    fn build(pool: par::Pool) -> CpuBackend {
        CpuBackend {
            pool,
            buffers: buffers::BufferPool::default(),
            launches: AtomicU64::new(0),
            executions: AtomicU64::new(0),
            profiling: AtomicBool::new(false),
            last_times: Mutex::new(None),
        }
    }

    /// One launch: its kernel run into a pooled buffer (or in place), and
    /// the slot it writes updated.
    fn run_launch(
        &self,
        plan: &Plan,
        k: &Kernel,
        slots: &mut [Option<Arc<CpuBuffer>>],
    ) -> Result<()> {
        let out = k.out();
        let out_slot = plan
            .slots
            .get(out)
            .ok_or_else(|| Error::invalid("cpu execute", format!("no slot {out}")))?;
        let read = |id: usize| -> Result<&CpuBuffer> {
            slots.get(id).and_then(|s| s.as_deref()).ok_or_else(|| {
                Error::invalid("cpu execute", format!("slot {id} read before written"))
            })
        };
        if let Kernel::IndexAddInPlace { .. } = k {
            let target = read(out)?;
            let mut data = target.write();
            kernels::index_add_in_place(k, &mut data, &read, &self.pool)?;
            return Ok(());
        }
        let result = self.buffers.acquire(out_slot.dtype, out_slot.len);
        if let Kernel::SoftmaxXentWithGrad {
            grad_out,
            batch,
            classes,
            ..
        } = *k
        {
            // Two outputs: the loss and the gradient.
            let grad = self.buffers.acquire(out_slot.dtype, batch * classes);
            kernels::softmax_xent_with_grad(
                k,
                out_slot,
                &read,
                (&mut result.write(), &mut grad.write()),
                &self.pool,
            )?;
            slots[out] = Some(result);
            if let Some(g) = slots.get_mut(grad_out) {
                *g = Some(grad);
            }
            return Ok(());
        }
        kernels::run(k, out_slot, &read, &mut result.write(), &self.pool)?;
        match (&slots[out], out_slot.kind) {
            // In place: the kernel read this input; give its buffer the
            // new contents (the old ones go back to the pool).
            (Some(existing), SlotKind::Input(_)) => {
                if existing.len() != out_slot.len || existing.dtype() != out_slot.dtype {
                    return Err(Error::invalid(
                        "cpu execute",
                        "in-place output of another size",
                    ));
                }
                std::mem::swap(&mut *existing.write(), &mut *result.write());
            }
            _ => slots[out] = Some(result),
        }
        Ok(())
    }

    /// The number of threads work is spread over.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

fn cpu_buffer(s: &Storage) -> Result<Arc<CpuBuffer>> {
    s.downcast::<CpuBuffer>().ok_or_else(|| {
        Error::invalid(
            "cpu backend",
            "got a buffer of another backend; move the tensor to the CPU first",
        )
    })
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn upload(&self, data: &HostData) -> Result<Storage> {
        Ok(Storage::new(self.buffers.upload(data)))
    }

    fn download(&self, storage: &Storage) -> Result<HostData> {
        Ok(cpu_buffer(storage)?.read().clone())
    }

    fn execute(&self, plan: &Plan, inputs: &[Storage]) -> Result<Vec<Storage>> {
        super::check_inputs(plan, inputs, "cpu execute")?;
        self.executions.fetch_add(1, Ordering::Relaxed);
        let mut slots: Vec<Option<Arc<CpuBuffer>>> = vec![None; plan.slots.len()];
        for (i, slot) in plan.slots.iter().enumerate() {
            if let SlotKind::Input(k) = slot.kind {
                slots[i] = Some(cpu_buffer(&inputs[k])?);
            }
        }
        let profile = self.profiling.load(Ordering::Relaxed);
        let mut times = Vec::with_capacity(if profile { plan.launches.len() } else { 0 });
        for launch in &plan.launches {
            self.launches.fetch_add(1, Ordering::Relaxed);
            let start = profile.then(Instant::now);
            self.run_launch(plan, &launch.kernel, &mut slots)?;
            if let Some(t) = start {
                times.push((launch.label(""), t.elapsed().as_secs_f64() * 1e3));
            }
        }
        if profile {
            *lock(&self.last_times) = Some(times);
        }
        collect_outputs(plan, &slots)
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn counters(&self) -> Counters {
        let launches = self.launches.load(Ordering::Relaxed);
        Counters {
            buffers_created: self.buffers.created(),
            launches,
            dispatches: launches,
            submissions: self.executions.load(Ordering::Relaxed),
            ..Counters::default()
        }
    }

    fn is_gpu(&self) -> bool {
        false
    }

    /// Profiled executions time each launch on the host clock: the CPU
    /// runs a launch to completion before the next, so the wall time
    /// between two launches is that launch's own, thread hand-offs
    /// included. Turning it on forgets the previous profile.
    fn set_profiling(&self, on: bool) {
        if on {
            *lock(&self.last_times) = None;
        }
        self.profiling.store(on, Ordering::Relaxed);
    }

    fn kernel_times(&self) -> Option<Vec<(String, f64)>> {
        lock(&self.last_times).clone()
    }
}

/// The plan's outputs, from the slots the launches wrote.
fn collect_outputs(plan: &Plan, slots: &[Option<Arc<CpuBuffer>>]) -> Result<Vec<Storage>> {
    let mut outputs = vec![None; plan.n_outputs];
    for (i, slot) in plan.slots.iter().enumerate() {
        if let SlotKind::Output(k) = slot.kind
            && let Some(o) = outputs.get_mut(k)
        {
            *o = slots[i].clone();
        }
    }
    outputs
        .into_iter()
        .enumerate()
        .map(|(k, s)| {
            s.map(|b| Storage::new(b))
                .ok_or_else(|| Error::invalid("cpu execute", format!("output {k} never written")))
        })
        .collect()
}
