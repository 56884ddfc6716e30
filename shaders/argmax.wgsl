// Index of the largest (override IS_MIN: smallest) element along the
// middle axis of an input seen as [outer, len, inner], as u32. Ties give
// the first index; a NaN counts as the extreme, so the first NaN wins
// (like the CPU backend and PyTorch).
//
// Bindings:
//   0: out  array<u32>, read_write: [outer, inner].
//   1: P    uniform Params: outer, len (>= 1), inner, and `count`, the
//           number of outputs (outer · inner).
//   2: src  array<f32>, read: [outer, len, inner].
//
// Dispatch: one thread per output, 64 per workgroup, 2-D grid (linear
// index y · num_workgroups.x + x); each thread scans its `len` values in
// order, so the result is deterministic.

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    count: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> P: Params;
@group(0) @binding(2) var<storage, read> src: array<f32>;

override IS_MIN: bool = false;

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(64)
fn argmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (e >= P.count) {
        return;
    }
    let base = (e / P.inner) * P.len * P.inner + e % P.inner;
    var best = src[base];
    var arg = 0u;
    for (var l = 1u; l < P.len; l++) {
        if (is_nan(best)) {
            break;
        }
        let v = src[base + l * P.inner];
        let better = select(v > best, v < best, IS_MIN);
        if (better || is_nan(v)) {
            best = v;
            arg = l;
        }
    }
    out[e] = arg;
}
