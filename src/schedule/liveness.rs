//! Buffer sharing by liveness: temp slots whose lifetimes do not overlap
//! share a buffer, so a step needs few buffers and, once its plan is cached,
//! allocates none.

use crate::ir::{Launch, Slot, SlotKind};

/// Sets each temp slot's `buffer` and returns the number of buffers. A
/// buffer is reused only by slots of the same dtype and no larger size class
/// than it was created for... in practice: the same dtype, and a length at
/// most the buffer's (buffers grow to the largest slot they hold).
pub(crate) fn assign_buffers(slots: &mut [Slot], launches: &[Launch]) -> usize {
    let mut last_use = vec![0usize; slots.len()];
    for (i, l) in launches.iter().enumerate() {
        for r in l.kernel.reads() {
            last_use[r] = i;
        }
        for o in l.kernel.outputs() {
            last_use[o] = last_use[o].max(i);
        }
    }
    // (dtype, len) of each buffer; free list of buffer numbers.
    let mut buffers: Vec<(crate::dtype::DType, usize)> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut assigned = vec![usize::MAX; slots.len()];
    for (i, l) in launches.iter().enumerate() {
        let outs = l.kernel.outputs();
        for &o in &outs {
            if !matches!(slots[o].kind, SlotKind::Temp { .. }) || assigned[o] != usize::MAX {
                continue;
            }
            let want = (slots[o].dtype, slots[o].len);
            // Best fit: the smallest free buffer of the dtype that is large
            // enough, else the largest one (it grows), else a new one.
            let same: Vec<usize> = free
                .iter()
                .copied()
                .filter(|&b| buffers[b].0 == want.0)
                .collect();
            let pick = same
                .iter()
                .copied()
                .filter(|&b| buffers[b].1 >= want.1)
                .min_by_key(|&b| buffers[b].1)
                .or_else(|| same.iter().copied().max_by_key(|&b| buffers[b].1));
            let b = match pick {
                Some(b) => {
                    free.retain(|&f| f != b);
                    buffers[b].1 = buffers[b].1.max(want.1);
                    b
                }
                None => {
                    buffers.push(want);
                    buffers.len() - 1
                }
            };
            assigned[o] = b;
        }
        // Release the buffers whose slots die at this launch (not the ones
        // just written, unless nothing reads them later).
        for r in l.kernel.reads().into_iter().chain(outs) {
            if last_use[r] == i && assigned[r] != usize::MAX && !free.contains(&assigned[r]) {
                free.push(assigned[r]);
            }
        }
    }
    for (s, b) in slots.iter_mut().zip(assigned) {
        if let SlotKind::Temp { buffer } = &mut s.kind {
            *buffer = if b == usize::MAX { 0 } else { b };
        }
    }
    buffers.len()
}
