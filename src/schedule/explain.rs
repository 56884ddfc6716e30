//! Human-readable plans: each launch, what it fused, FLOPs and bytes moved.

use std::fmt::Write;

use crate::device::Device;
use crate::ir::{Kernel, Plan, SlotKind};

/// FLOPs and bytes of one launch (bytes: each slot read once, output written
/// once; an estimate of the memory traffic a fused kernel needs).
pub fn cost(plan: &Plan, k: &Kernel) -> (u64, u64) {
    let bytes = |s: usize| (plan.slots[s].len * plan.slots[s].dtype.size_bytes()) as u64;
    let written: u64 = k.outputs().iter().map(|&s| bytes(s)).sum();
    let mut moved: u64 = k.reads().iter().map(|&s| bytes(s)).sum::<u64>() + written;
    let out_len = plan.slots[k.out()].len as u64;
    let flops = match k {
        Kernel::Elementwise { expr, .. } => out_len * expr.op_count() as u64,
        Kernel::Matmul {
            m, k, n, epilogue, ..
        } => {
            let e = epilogue.as_ref().map_or(0, |e| e.expr.op_count() as u64);
            2 * (*m * *k * *n) as u64 + out_len * e
        }
        Kernel::Reduce {
            outer,
            len,
            inner,
            epilogue,
            ..
        } => {
            let e = epilogue.as_ref().map_or(0, |e| e.expr.op_count() as u64);
            (outer * len * inner) as u64 + out_len * e
        }
        Kernel::ArgMax {
            outer, len, inner, ..
        } => (outer * len * inner) as u64,
        Kernel::Pad { .. } => 0,
        Kernel::SoftmaxXent { batch, classes, .. }
        | Kernel::SoftmaxXentGrad { batch, classes, .. } => 4 * (batch * classes) as u64,
        Kernel::SoftmaxXentWithGrad { batch, classes, .. } => 6 * (batch * classes) as u64,
        Kernel::LogSoftmax { rows, cols, .. } => 4 * (rows * cols) as u64,
        Kernel::LogisticLoss { n, .. } | Kernel::LogisticLossGrad { n, .. } => 5 * *n as u64,
        Kernel::ScatterAdd { n, dim, .. } => (n * dim) as u64,
        Kernel::IndexAddInPlace { n, dim, .. } => {
            // Only the touched rows move, not the whole table.
            moved = moved - bytes(k.out()) * 2 + 2 * (n * dim * 4) as u64;
            2 * (n * dim) as u64
        }
        Kernel::Gather { table, n, dim, .. } => {
            // Only the picked rows are read, not the whole table.
            let elem = plan.slots[*table].dtype.size_bytes() as u64;
            moved = moved - bytes(*table) + (n * dim) as u64 * elem;
            0
        }
        Kernel::Custom { .. } => 0,
    };
    (flops, moved)
}

/// The plan as a table.
pub fn explain(plan: &Plan) -> String {
    explain_with(plan, &[])
}

/// The plan as a table, each launch followed by what `device`'s backend
/// will run for it (e.g. the matmul variant the wgpu backend's tuner
/// chose, and whether it was tuned, read from the tuning cache or picked
/// by the fixed heuristic). Tuning happens here if no choice was made yet.
pub fn explain_on(plan: &Plan, device: &Device) -> String {
    explain_with(plan, &device.backend().launch_notes(plan))
}

/// The table, with `notes[i]` (if any) after launch `i`.
pub fn explain_with(plan: &Plan, notes: &[String]) -> String {
    let mut s = String::new();
    let (mut tf, mut tb) = (0u64, 0u64);
    let _ = writeln!(
        s,
        "plan: {} launches, {} inputs, {} outputs, {} temp buffers",
        plan.launches.len(),
        plan.n_inputs,
        plan.n_outputs,
        plan.n_temp_buffers
    );
    let _ = writeln!(
        s,
        "{:>3}  {:<24} {:>12} {:>12}  fused",
        "#", "kernel", "MFLOP", "KiB"
    );
    for (i, l) in plan.launches.iter().enumerate() {
        let (f, b) = cost(plan, &l.kernel);
        tf += f;
        tb += b;
        let mut name = l.kernel.name().to_string();
        if let Kernel::Matmul {
            m,
            k,
            n,
            trans_a,
            trans_b,
            ..
        } = &l.kernel
        {
            name = format!(
                "matmul {m}x{k}x{n}{}{}",
                if *trans_a { " Aᵀ" } else { "" },
                if *trans_b { " Bᵀ" } else { "" }
            );
        }
        let targets: Vec<String> = l
            .kernel
            .outputs()
            .iter()
            .map(|&o| match plan.slots[o].kind {
                SlotKind::Output(k) => format!("out{k}"),
                SlotKind::Input(k) => format!("in{k} (in place)"),
                SlotKind::Temp { buffer } => format!("tmp{buffer}"),
            })
            .collect();
        let note = match notes.get(i) {
            Some(n) if !n.is_empty() => format!("  [{n}]"),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "{:>3}  {:<24} {:>12.3} {:>12.1}  {} -> {}{}",
            i,
            name,
            f as f64 / 1e6,
            b as f64 / 1024.0,
            l.fused.join(" + "),
            targets.join(", "),
            note
        );
    }
    let _ = writeln!(
        s,
        "total: {:.3} MFLOP, {:.1} KiB moved",
        tf as f64 / 1e6,
        tb as f64 / 1024.0
    );
    s
}
