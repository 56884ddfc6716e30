// Deterministic scatter-add and in-place index-add, without float atomics.
// The host sorts positions stably by id (`order`) and groups them, so each
// output row is summed by one thread per column, in position order: two
// runs give bit-identical results, matching the CPU backend's order.
//
// Bindings (every entry point; binding 4 only in index_add_factor):
//   0: out   array<f32>, read_write. scatter_add: [rows, dim], fully
//            written. index_add: the target [rows, dim], updated in place.
//   1: P     uniform Params: rows, dim, n (number of ids), and `scale`
//            (index_add; f32 bits).
//   2: src   array<f32>, read: [n, dim].
//   3: aux   array<u32>, read, filled by the host:
//            scatter_add: order[n] then row_ptr[rows + 1]; row r's positions
//              are order[row_ptr[r] .. row_ptr[r + 1]] (CSR).
//            index_add: n_seg, then order[n], seg_start[n + 1], seg_id[n];
//              segment s is row seg_id[s] with positions
//              order[seg_start[s] .. seg_start[s + 1]].
//   4: factor array<f32>, read (index_add_factor only): [1], multiplies
//            `scale` (a learning rate passed as data).
//
// Dispatch: one thread per element of out (scatter_add) or per (segment,
// column) for up to n segments (index_add); 64 per workgroup, 2-D grid.

struct Params {
    rows: u32,
    dim: u32,
    n: u32,
    scale: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<u32>;
@group(0) @binding(4) var<storage, read> factor: array<f32>;

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn scatter_add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = thread_index(wid, nwg, lid);
    if (e >= P.rows * P.dim) {
        return;
    }
    let r = e / P.dim;
    let c = e % P.dim;
    let ptr_base = P.n;
    var acc = 0.0;
    for (var p = aux[ptr_base + r]; p < aux[ptr_base + r + 1u]; p++) {
        acc = acc + src[aux[p] * P.dim + c];
    }
    out[e] = acc;
}

@compute @workgroup_size(64)
fn index_add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    add_rows(thread_index(wid, nwg, lid), bitcast<f32>(P.scale));
}

@compute @workgroup_size(64)
fn index_add_factor(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    add_rows(thread_index(wid, nwg, lid), bitcast<f32>(P.scale) * factor[0]);
}

// Segment e / dim's rows, scaled, added to its target row at column e % dim.
fn add_rows(e: u32, scale: f32) {
    let s = e / P.dim;
    let c = e % P.dim;
    let n_seg = aux[0];
    if (s >= n_seg) {
        return;
    }
    let order = 1u;
    let seg_start = 1u + P.n;
    let seg_id = seg_start + P.n + 1u;
    let dst = aux[seg_id + s] * P.dim + c;
    var acc = out[dst];
    for (var p = aux[seg_start + s]; p < aux[seg_start + s + 1u]; p++) {
        acc = acc + scale * src[aux[order + p] * P.dim + c];
    }
    out[dst] = acc;
}
