// Element-wise template: out[i] = expr(x0, x1, …) for each multi-index i
// over `shape` (row-major, i is the linear index). Filled by
// src/backend/wgpu/emit.rs at its marker comments (see emit.rs).
//
// Bindings:
//   0: out  array<f32>, read_write: the output, dense over `shape`.
//   1: P    uniform Params:
//        head.x = element count, head.y = rank (<= 8),
//        shape  = the 8 dims, packed 4 per vec4 (unused dims 1),
//        strides[2*j], strides[2*j+1] = the 8 strides of input j's view,
//        offsets = the 16 inputs' view offsets, packed 4 per vec4 (only
//        strided reads use them; other reads have offset 0).
//   2..: one array<f32>, read, per input that has its own buffer (in order,
//        skipping in-place inputs, which read `out`), declared by the
//        emitter at the BINDINGS marker.
//
// Dispatch: 64 threads per workgroup over a 2-D grid of workgroups (a 1-D
// count may exceed the 65535 per-dimension limit); x-major.

const MAX_INPUTS: u32 = 16u;

struct Params {
    head: vec4<u32>,
    shape: array<vec4<u32>, 2>,
    strides: array<vec4<u32>, 32>,
    offsets: array<vec4<u32>, 4>,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
//@BINDINGS

//@EXPR_FNS

// Offset of linear element `i` in input `j`'s view.
fn view_offset(j: u32, i: u32) -> u32 {
    var rem = i;
    var off = P.offsets[j / 4u][j % 4u];
    for (var d = i32(P.head.y) - 1; d >= 0; d--) {
        let du = u32(d);
        let size = P.shape[du / 4u][du % 4u];
        off += (rem % size) * P.strides[j * 2u + du / 4u][du % 4u];
        rem /= size;
    }
    return off;
}

fn compute(i: u32) -> f32 {
//@LOADS
    return /*@EXPR*/0.0;
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (i >= P.head.x) {
        return;
    }
    out[i] = compute(i);
}
