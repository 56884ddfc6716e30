// Zero padding along one axis (the adjoint of a slice): the input, seen as
// [outer, len, inner], is placed at `before` along the middle axis of an
// output [outer, total, inner] whose other elements are 0.
//
// Bindings:
//   0: out  array<f32>, read_write: [outer, total, inner].
//   1: P    uniform Params: outer, len, inner, before, total, and `count`,
//           the number of output elements (outer · total · inner).
//   2: src  array<f32>, read: [outer, len, inner].
//
// Dispatch: one thread per output element, 64 per workgroup, 2-D grid
// (linear index y · num_workgroups.x + x).

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    before: u32,
    total: u32,
    count: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@group(0) @binding(2) var<storage, read> src: array<f32>;

@compute @workgroup_size(64)
fn pad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (e >= P.count) {
        return;
    }
    let i = e % P.inner;
    let t = (e / P.inner) % P.total;
    let o = e / (P.inner * P.total);
    var v = 0.0;
    if (t >= P.before && t < P.before + P.len) {
        v = src[(o * P.len + (t - P.before)) * P.inner + i];
    }
    out[e] = v;
}
