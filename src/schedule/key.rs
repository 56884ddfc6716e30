//! The structural key of a step: ops, shapes, dtypes and wiring, so that
//! the next step with the same structure replays the cached plan.

use std::sync::Arc;

use super::{Goal, Ref, StepDesc};
use crate::dtype::DType;
use crate::ir::Op;

fn dtype_code(d: DType) -> u64 {
    match d {
        DType::F32 => 1,
        DType::F64 => 2,
        DType::U32 => 3,
    }
}

fn ref_code(r: Ref) -> u64 {
    match r {
        Ref::Node(i) => (i as u64) << 1,
        Ref::Input(k) => ((k as u64) << 1) | 1,
    }
}

pub(crate) fn op_code(op: &Op, out: &mut Vec<u64>) {
    match op {
        Op::Leaf => out.push(1),
        Op::Fill(v) => out.extend([2, v.to_bits()]),
        Op::Unary(u) => out.extend([3, *u as u64]),
        Op::Binary(b) => out.extend([4, *b as u64]),
        Op::Matmul => out.push(5),
        Op::Reduce(r, axis) => out.extend([6, *r as u64, *axis as u64]),
        Op::Reshape => out.push(7),
        Op::Permute(p) => {
            out.extend([8, p.len() as u64]);
            out.extend(p.iter().map(|&x| x as u64));
        }
        Op::Expand => out.push(9),
        Op::Gather => out.push(10),
        Op::ScatterAdd => out.push(11),
        Op::SoftmaxXent => out.push(12),
        Op::SoftmaxXentGrad => out.push(13),
        Op::LogSoftmax => out.push(14),
        Op::LogisticLoss => out.push(15),
        Op::LogisticLossGrad => out.push(16),
        Op::Detach => out.push(17),
        Op::Where => out.push(19),
        Op::Narrow { axis, start } => out.extend([20, *axis as u64, *start as u64]),
        Op::Pad { axis, before } => out.extend([21, *axis as u64, *before as u64]),
        Op::ArgMax { axis, min } => out.extend([22, *axis as u64, *min as u64]),
        Op::Custom { op, backward_input } => {
            // The op instance itself: two instances may behave differently.
            let ptr = Arc::as_ptr(op) as *const () as usize as u64;
            out.extend([18, ptr, backward_input.map_or(0, |i| i as u64 + 1)]);
        }
    }
}

/// The key of `step` on device `device` with fusion `fuse`.
pub(crate) fn plan_key(device: u64, step: &StepDesc, fuse: bool) -> Vec<u64> {
    let (nodes, inputs) = (&step.nodes, &step.inputs);
    let mut k = Vec::with_capacity(8 * (nodes.len() + inputs.len()) + 8);
    k.extend([device, fuse as u64, inputs.len() as u64, nodes.len() as u64]);
    for (shape, dtype) in inputs {
        k.extend([dtype_code(*dtype), shape.len() as u64]);
        k.extend(shape.iter().map(|&s| s as u64));
    }
    for n in nodes {
        op_code(&n.op, &mut k);
        k.extend([dtype_code(n.dtype), n.shape.len() as u64]);
        k.extend(n.shape.iter().map(|&s| s as u64));
        k.push(n.inputs.len() as u64);
        k.extend(n.inputs.iter().map(|&r| ref_code(r)));
    }
    for g in &step.goals {
        match g {
            Goal::Output { node, k: o } => k.extend([100, *node as u64, *o as u64]),
            Goal::Rows {
                target,
                ids,
                rows,
                scale,
            } => k.extend([
                101,
                *target as u64,
                ref_code(*ids),
                ref_code(*rows),
                scale.to_bits(),
            ]),
        }
    }
    k
}
