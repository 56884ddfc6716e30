// Reductions over the middle axis of an input seen as [outer, len, inner],
// and the mean of a vector (the last step of mean losses).
//
// Bindings (every entry point):
//   0: out  array<f32>, read_write: [outer, inner] (serial, tree) or one
//           element (mean_all).
//   1: P    uniform Params: outer, len, inner, and `count`, the number of
//           outputs (serial, tree) or the divisor (mean_all).
//   2: src  array<f32>, read: [outer, len, inner] (serial, tree) or `len`
//           values (mean_all).
//
// Override IS_MAX: max instead of sum (serial, tree). Max propagates NaN,
// like the CPU backend. Every order of summation is fixed, so results are
// bit-identical from run to run.

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    count: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@group(0) @binding(2) var<storage, read> src: array<f32>;

override IS_MAX: bool = false;

const WG: u32 = 256u;
var<workgroup> part: array<f32, 256>;

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn identity() -> f32 {
    if (IS_MAX) {
        return bitcast<f32>(0xff800000u);
    }
    return 0.0;
}

fn combine(a: f32, b: f32) -> f32 {
    if (IS_MAX) {
        return select(b, a, is_nan(a) || a >= b);
    }
    return a + b;
}

// Halves `part` until part[0] holds the combination of all 256 entries.
fn tree_reduce(t: u32) {
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        workgroupBarrier();
        if (t < s) {
            part[t] = combine(part[t], part[t + s]);
        }
    }
    workgroupBarrier();
}

// One thread per output, looping over `len`: for short reductions or many
// outputs. 64 threads per workgroup, 2-D grid, x-major.
@compute @workgroup_size(64)
fn serial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (o >= P.count) {
        return;
    }
    let outer = o / P.inner;
    let i = o % P.inner;
    var acc = identity();
    for (var l = 0u; l < P.len; l++) {
        acc = combine(acc, src[(outer * P.len + l) * P.inner + i]);
    }
    out[o] = acc;
}

// One workgroup per output: 256 threads stride over `len`, then a tree.
// For long reductions with few outputs. 2-D grid of workgroups, x-major.
@compute @workgroup_size(256)
fn tree(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let o = wid.y * nwg.x + wid.x;
    // `o` is uniform across the workgroup, so this exit keeps barriers uniform.
    if (o >= P.count) {
        return;
    }
    let outer = o / P.inner;
    let i = o % P.inner;
    var acc = identity();
    for (var l = t; l < P.len; l += WG) {
        acc = combine(acc, src[(outer * P.len + l) * P.inner + i]);
    }
    part[t] = acc;
    tree_reduce(t);
    if (t == 0u) {
        out[o] = part[0];
    }
}

// out[0] = Σ src[0..len] / count, in one workgroup of 256 threads.
@compute @workgroup_size(256)
fn mean_all(@builtin(local_invocation_index) t: u32) {
    var acc = 0.0;
    for (var l = t; l < P.len; l += WG) {
        acc += src[l];
    }
    part[t] = acc;
    // `mean_all` never runs with IS_MAX set, so combine() is a sum here.
    tree_reduce(t);
    if (t == 0u) {
        out[0] = part[0] / f32(max(P.count, 1u));
    }
}
