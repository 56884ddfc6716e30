//! Host-side steps of a plan: id-dependent data for the deterministic
//! scatter (prepared from the ids' host copy) and custom ops.

use std::sync::Arc;

use super::buffer::GpuBuffer;
use super::compile::{Buf, Bufs, HostPrep};
use super::ctx::{Ctx, host_data};
use super::segments;
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::ir::{Kernel, Plan, SlotKind};

/// Host-side preparation from an ids buffer's host copy; skipped when the
/// same ids were prepared last time.
pub(super) fn prepare(
    cx: &Ctx,
    h: &HostPrep,
    ins: &[Arc<GpuBuffer>],
    bufs: &Bufs<'_>,
    seen: &mut Option<u64>,
) -> Result<()> {
    let (HostPrep::CheckIds { input, n, .. }
    | HostPrep::Csr { input, n, .. }
    | HostPrep::Segments { input, n, .. }) = *h;
    let b = ins
        .get(input)
        .ok_or_else(|| Error::invalid("wgpu execute", format!("no input {input}")))?;
    if *seen == Some(b.uid()) {
        return Ok(());
    }
    let host = b.host_copy().ok_or_else(|| {
        Error::invalid(
            "wgpu execute",
            format!("input {input} has no host copy of its ids"),
        )
    })?;
    let ids = host.get(..n).ok_or_else(|| {
        Error::invalid(
            "wgpu execute",
            format!("input {input} has fewer than {n} ids"),
        )
    })?;
    let (aux, data) = match *h {
        HostPrep::CheckIds { bound, .. } => {
            segments::check_ids("wgpu execute", ids, bound)?;
            *seen = Some(b.uid());
            return Ok(());
        }
        HostPrep::Csr { rows, aux, .. } => (aux, segments::csr(ids, rows)?),
        HostPrep::Segments { rows, aux, .. } => (aux, segments::segments(ids, rows)?),
    };
    if !data.is_empty() {
        let raw = bufs.raw(Buf::Scratch(aux))?;
        cx.gpu
            .queue
            .write_buffer(&raw.buffer, 0, bytemuck::cast_slice(&data));
    }
    *seen = Some(b.uid());
    Ok(())
}

/// Runs a custom op on the host: pending launches are submitted, the
/// inputs read back as f64, the result uploaded as f32.
pub(super) fn custom(cx: &Ctx, plan: &Plan, li: usize, bufs: &Bufs<'_>) -> Result<()> {
    let Some(Kernel::Custom {
        op,
        inputs,
        input_shapes,
        backward_input,
        out,
        ..
    }) = plan.launches.get(li).map(|l| &l.kernel)
    else {
        return Err(Error::Gpu("custom step is not a custom launch".into()));
    };
    let slot_buf = |s: usize| -> Result<(Buf, usize, DType)> {
        let slot = &plan.slots[s];
        let b = match slot.kind {
            SlotKind::Input(k) => Buf::Input(k),
            SlotKind::Temp { buffer } => Buf::Temp(buffer),
            SlotKind::Output(k) => Buf::Output(k),
        };
        Ok((b, slot.len, slot.dtype))
    };
    let mut vals = Vec::with_capacity(inputs.len());
    for &s in inputs {
        let (b, len, dtype) = slot_buf(s)?;
        let bytes = cx.read_raw(bufs.raw(b)?, len as u64 * 4)?;
        vals.push(host_data(&bytes, dtype)?.to_f64());
    }
    let r = match backward_input {
        None => op.forward(&vals, input_shapes)?,
        Some(i) => {
            let (args, g) = vals.split_at(vals.len().saturating_sub(1));
            let g = g
                .first()
                .ok_or_else(|| Error::invalid("custom", "backward without an upstream gradient"))?;
            op.backward(args, input_shapes, g, *i)?
        }
    };
    let (b, len, _) = slot_buf(*out)?;
    if r.len() != len {
        return Err(Error::invalid(
            "wgpu execute",
            format!(
                "custom op {} produced {} values for a slot of {len}",
                op.name(),
                r.len()
            ),
        ));
    }
    let f: Vec<f32> = HostData::from_f64(&r, DType::F32).to_f32();
    if !f.is_empty() {
        cx.gpu
            .queue
            .write_buffer(&bufs.raw(b)?.buffer, 0, bytemuck::cast_slice(&f));
    }
    Ok(())
}
