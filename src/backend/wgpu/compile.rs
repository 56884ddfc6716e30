//! Turns a `Plan` into dispatch steps: validates every launch against its
//! slots (so the device never sees an out-of-range binding), picks kernel
//! ids, packs uniform parameters and sizes the plan's own buffers.

use std::sync::Arc;

use super::buffer::{GpuBuffer, Raw};
use super::choice::Choice;
use super::emit::Access;
use super::kernels::KernelId;
use super::variants::MatmulShape;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ir::{Plan, Slot, SlotId, SlotKind, View};

/// A buffer as the plan sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Buf {
    Input(usize),
    Temp(usize),
    Output(usize),
    /// Plan-owned helper buffer (per-row losses, scatter segments).
    Scratch(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bind {
    Buf(Buf),
    Params,
}

pub(super) struct Dispatch {
    pub kernel: KernelId,
    /// In the order of `kernel.bindings()`.
    pub binds: Vec<Bind>,
    pub params: Vec<u8>,
    pub groups: [u32; 3],
}

/// Host work before recording, redone only when the ids buffer changes.
pub(super) enum HostPrep {
    /// Check `ids[..n] < bound` (gather, class labels).
    CheckIds {
        input: usize,
        n: usize,
        bound: usize,
    },
    /// Fill `aux` with `segments::csr` (scatter-add).
    Csr {
        input: usize,
        n: usize,
        rows: usize,
        aux: usize,
    },
    /// Fill `aux` with `segments::segments` (index-add).
    Segments {
        input: usize,
        n: usize,
        rows: usize,
        aux: usize,
    },
}

pub(super) enum Step {
    Dispatch(Box<Dispatch>),
    Host(HostPrep),
    /// `plan.launches[i]` is a custom op, run on the host.
    Custom(usize),
}

pub(super) struct Compiled {
    pub steps: Vec<Step>,
    pub temp_bytes: Vec<u64>,
    pub scratch_bytes: Vec<u64>,
    /// Per output index: (len, dtype).
    pub outputs: Vec<(usize, DType)>,
    /// Per step: the launch it belongs to (a launch may take several
    /// dispatches, or none), so profiles can be reported per launch.
    pub launch_of: Vec<usize>,
    /// Per launch: how it runs, where there is a choice (a matmul's
    /// variant and how it was chosen; a reduction's strategy), for
    /// `explain` and the profile's labels. Empty where there is none.
    pub notes: Vec<String>,
}

/// What compiling needs to know of the device.
pub(super) struct Env<'a> {
    /// The adapter's workgroups per grid dimension.
    pub max_groups: u32,
    /// Whether the device runs subgroup operations.
    pub subgroups: bool,
    /// The variant of each matmul (tuned, cached, heuristic or pinned).
    pub choose: &'a dyn Fn(&MatmulShape) -> Choice,
}

const OP: &str = "wgpu execute";

pub(super) fn invalid(msg: String) -> Error {
    Error::invalid(OP, msg)
}

/// Appends little-endian u32 words.
pub(super) fn words(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

pub(super) fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::Gpu(format!("{what} = {v} exceeds the GPU's 32-bit indexing")))
}

/// Workgroups for `items`, split over x and y when over the per-dimension
/// limit; shaders rebuild the linear index as `y * num_workgroups.x + x`.
pub(super) fn grid(groups: u64, max: u32) -> Result<[u32; 3]> {
    let max = max.max(1) as u64;
    let x = groups.min(max);
    let y = if x == 0 { 0 } else { groups.div_ceil(x) };
    if y > max {
        return Err(Error::Gpu(format!(
            "{groups} workgroups exceed the adapter's {max}×{max} grid"
        )));
    }
    Ok([x as u32, y as u32, 1])
}

/// The buffers a plan execution binds.
pub(super) struct Bufs<'a> {
    pub(super) inputs: &'a [Arc<GpuBuffer>],
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

pub(super) struct Compiler<'a> {
    pub(super) plan: &'a Plan,
    pub(super) max_groups: u32,
    pub(super) env: &'a Env<'a>,
    pub(super) steps: Vec<Step>,
    pub(super) scratch: Vec<u64>,
    /// The note of the launch being compiled.
    pub(super) note: String,
}

pub(super) fn compile(plan: &Plan, env: &Env<'_>) -> Result<Compiled> {
    let mut temp_bytes = vec![0u64; plan.n_temp_buffers];
    let mut outputs = vec![None; plan.n_outputs];
    for (i, s) in plan.slots.iter().enumerate() {
        if s.dtype == DType::F64 {
            return Err(Error::Gpu(format!(
                "slot {i} is f64, which the wgpu backend does not support; use f32 or the CPU backend"
            )));
        }
        let bytes = (s.len as u64) * 4;
        match s.kind {
            SlotKind::Input(k) if k >= plan.n_inputs => {
                return Err(invalid(format!(
                    "slot {i} is input {k} of {}",
                    plan.n_inputs
                )));
            }
            SlotKind::Temp { buffer } => {
                let t = temp_bytes.get_mut(buffer).ok_or_else(|| {
                    invalid(format!(
                        "slot {i} uses temp buffer {buffer} of {}",
                        plan.n_temp_buffers
                    ))
                })?;
                *t = (*t).max(bytes);
            }
            SlotKind::Output(k) => {
                *outputs.get_mut(k).ok_or_else(|| {
                    invalid(format!("slot {i} is output {k} of {}", plan.n_outputs))
                })? = Some((s.len, s.dtype));
            }
            SlotKind::Input(_) => {}
        }
    }
    let outputs = outputs
        .into_iter()
        .enumerate()
        .map(|(k, o)| o.ok_or_else(|| invalid(format!("output {k} has no slot"))))
        .collect::<Result<Vec<_>>>()?;
    let mut c = Compiler {
        plan,
        max_groups: env.max_groups,
        env,
        steps: Vec::new(),
        scratch: Vec::new(),
        note: String::new(),
    };
    let mut written = vec![false; plan.slots.len()];
    let mut launch_of = Vec::new();
    let mut notes = Vec::with_capacity(plan.launches.len());
    for (li, launch) in plan.launches.iter().enumerate() {
        let k = &launch.kernel;
        for s in k.reads().into_iter().chain(k.outputs()) {
            c.slot(s)?;
        }
        c.launch(li, k)?;
        notes.push(std::mem::take(&mut c.note));
        launch_of.resize(c.steps.len(), li);
        for o in k.outputs() {
            written[o] = true;
        }
    }
    for (i, s) in plan.slots.iter().enumerate() {
        if matches!(s.kind, SlotKind::Output(_)) && !written[i] {
            return Err(invalid(format!("output slot {i} is never written")));
        }
    }
    Ok(Compiled {
        steps: c.steps,
        temp_bytes,
        scratch_bytes: c.scratch,
        outputs,
        launch_of,
        notes,
    })
}

/// Input views of an elementwise kernel or epilogue, resolved.
pub(super) struct Views {
    pub(super) access: Vec<Access>,
    /// Bindings of the inputs with their own buffer.
    pub(super) binds: Vec<Bind>,
    /// Per input, its strides (for Params).
    pub(super) strides: Vec<Vec<u32>>,
    /// Per input, the view's offset (for Params).
    pub(super) offsets: Vec<u32>,
}

fn contiguous(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

impl Compiler<'_> {
    pub(super) fn slot(&self, id: SlotId) -> Result<&Slot> {
        self.plan
            .slots
            .get(id)
            .ok_or_else(|| invalid(format!("slot {id} of {}", self.plan.slots.len())))
    }

    pub(super) fn buf(&self, id: SlotId) -> Result<Buf> {
        Ok(match self.slot(id)?.kind {
            SlotKind::Input(k) => Buf::Input(k),
            SlotKind::Temp { buffer } => Buf::Temp(buffer),
            SlotKind::Output(k) => Buf::Output(k),
        })
    }

    /// `id` must hold at least `len` elements of `dtype`.
    pub(super) fn need(&self, id: SlotId, len: usize, dtype: DType, what: &str) -> Result<Bind> {
        let s = self.slot(id)?;
        if s.dtype != dtype || s.len < len {
            return Err(invalid(format!(
                "{what} (slot {id}) is {} x {}, needs at least {len} x {dtype}",
                s.len, s.dtype
            )));
        }
        Ok(Bind::Buf(self.buf(id)?))
    }

    /// The output: exactly `len` f32 values.
    pub(super) fn out(&self, id: SlotId, len: usize, what: &str) -> Result<Buf> {
        let s = self.slot(id)?;
        if s.dtype != DType::F32 || s.len != len {
            return Err(invalid(format!(
                "{what} output (slot {id}) is {} x {}, the kernel writes {len} x f32",
                s.len, s.dtype
            )));
        }
        self.buf(id)
    }

    /// An input that must be a plan input (its host copy is read).
    pub(super) fn ids(&self, id: SlotId, n: usize, what: &str) -> Result<(Bind, usize)> {
        let b = self.need(id, n, DType::U32, what)?;
        match self.slot(id)?.kind {
            SlotKind::Input(k) => Ok((b, k)),
            _ => Err(invalid(format!(
                "{what} (slot {id}) must be a plan input uploaded from the host"
            ))),
        }
    }

    pub(super) fn new_scratch(&mut self, bytes: usize) -> usize {
        self.scratch.push(bytes as u64);
        self.scratch.len() - 1
    }

    pub(super) fn dispatch(
        &mut self,
        kernel: KernelId,
        binds: Vec<Bind>,
        params: Vec<u8>,
        groups: u64,
    ) -> Result<()> {
        let groups = grid(groups, self.max_groups)?;
        if groups[0] > 0 {
            self.steps.push(Step::Dispatch(Box::new(Dispatch {
                kernel,
                binds,
                params,
                groups,
            })));
        }
        Ok(())
    }

    /// Access kinds for views over `shape`, and the stride words for Params.
    pub(super) fn views(&self, views: &[View], shape: &[usize], out: Buf) -> Result<Views> {
        let dense = contiguous(shape);
        let (mut access, mut binds, mut strides) = (Vec::new(), Vec::new(), Vec::new());
        let mut offsets = Vec::new();
        for (j, v) in views.iter().enumerate() {
            if v.strides.len() != shape.len() {
                return Err(invalid(format!(
                    "view {j} has rank {}, shape {shape:?}",
                    v.strides.len()
                )));
            }
            let need = v.reach(shape).map_or(0, |r| r + 1);
            let b = self.need(v.slot, need, DType::F32, &format!("view {j}"))?;
            // Strides of size-1 dimensions never matter.
            let live = |a: &[usize]| -> Vec<usize> {
                shape
                    .iter()
                    .zip(a)
                    .filter(|(d, _)| **d > 1)
                    .map(|(_, s)| *s)
                    .collect()
            };
            // Only the strided read adds the view's offset.
            let is_dense = live(&v.strides) == live(&dense) && v.offset == 0;
            let a = if b == Bind::Buf(out) && is_dense {
                Access::InPlace
            } else if is_dense {
                Access::Contiguous
            } else if live(&v.strides).iter().all(|&s| s == 0) && v.offset == 0 {
                Access::Broadcast
            } else {
                Access::Strided
            };
            offsets.push(u32_of(v.offset, "view offset")?);
            if a != Access::InPlace {
                binds.push(b);
            }
            access.push(a);
            strides.push(
                v.strides
                    .iter()
                    .map(|&s| u32_of(s, "stride"))
                    .collect::<Result<_>>()?,
            );
        }
        Ok(Views {
            access,
            binds,
            strides,
            offsets,
        })
    }
}
