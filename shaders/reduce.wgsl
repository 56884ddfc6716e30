// Reductions over the middle axis of an input seen as [outer, len, inner],
// with an optional element-wise epilogue, and the mean of a vector (the
// last step of mean losses). A template: the emitter fills the epilogue
// (bare, it is `acc`) and may replace the workgroup reduction between
// WG_REDUCE_BEGIN and WG_REDUCE_END with shaders/subgroup.wgsl, adding the
// subgroup builtins at each SG_ARGS marker and setting them at SG_INIT.
//
// Bindings (every entry point):
//   0: out  array<f32>, read_write: [outer, inner] (serial, tree) or one
//           element (mean_all).
//   1: P    uniform Params: outer, len, inner, and `count`, the number of
//           outputs (serial, tree) or the divisor (mean_all); epi[j].xyz =
//           row stride, column stride and offset of epilogue input j's view
//           over [outer, inner].
//   2: src  array<f32>, read: [outer, len, inner] (serial, tree) or `len`
//           values (mean_all).
//   3..: epilogue inputs, declared by the emitter at the BINDINGS marker.
//
// Override IS_MAX: max instead of sum (serial, tree). Max propagates NaN,
// like the CPU backend. Every order of summation is fixed, so results are
// bit-identical from run to run. Every index is bounded by the sizes in P,
// which the backend checks against the slots.

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    count: u32,
    epi: array<vec4<u32>, 16>,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@group(0) @binding(2) var<storage, read> src: array<f32>;
//@BINDINGS

override IS_MAX: bool = false;

const WG: u32 = 256u;

//@EXPR_FNS

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

//@WG_REDUCE_BEGIN
var<workgroup> part: array<f32, 256>;

// The combination (max or sum) of `v` over the workgroup's `count`
// threads, in a fixed order (a halving tree over `part`); every thread
// gets it. Called in uniform control flow; `count` is a power of two.
fn wg_reduce(v: f32, t: u32, count: u32, is_max: bool) -> f32 {
    workgroupBarrier();
    part[t] = v;
    for (var s = count / 2u; s > 0u; s /= 2u) {
        workgroupBarrier();
        if (t < s) {
            let x = part[t];
            let y = part[t + s];
            part[t] = select(x + y, select(y, x, is_nan(x) || x >= y), is_max);
        }
    }
    return workgroupUniformLoad(&part[0]);
}
//@WG_REDUCE_END

fn epi_offset(j: u32, row: u32, col: u32) -> u32 {
    return P.epi[j].z + row * P.epi[j].x + col * P.epi[j].y;
}

fn epilogue(acc: f32, row: u32, col: u32) -> f32 {
//@LOADS
    return /*@EXPR*/acc;
}

fn store(o: u32, acc: f32) {
    out[o] = epilogue(acc, o / P.inner, o % P.inner);
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
    store(o, acc);
}

// One workgroup per output: 256 threads stride over `len`, then the
// workgroup reduction. For long reductions with few outputs (a bias
// gradient). 2-D grid of workgroups, x-major.
@compute @workgroup_size(256)
fn tree(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    /*@SG_ARGS*/
) {
    //@SG_INIT
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
    let total = wg_reduce(acc, t, WG, IS_MAX);
    if (t == 0u) {
        store(o, total);
    }
}

// out[0] = Σ src[0..len] / count, in one workgroup of 256 threads.
@compute @workgroup_size(256)
fn mean_all(
    @builtin(local_invocation_index) t: u32,
    /*@SG_ARGS*/
) {
    //@SG_INIT
    var acc = 0.0;
    for (var l = t; l < P.len; l += WG) {
        acc += src[l];
    }
    let total = wg_reduce(acc, t, WG, false);
    if (t == 0u) {
        out[0] = total / f32(max(P.count, 1u));
    }
}
