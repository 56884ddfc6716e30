// Row gather: out[i, :] = table[ids[i], :].
//
// Bindings:
//   0: out    array<f32>, read_write: [n, dim].
//   1: P      uniform Params: n, dim, rows (ids were checked < rows on the
//             host; the clamp below only keeps a bad id inside the table).
//   2: table  array<f32>, read: [rows, dim].
//   3: ids    array<u32>, read: n ids.
//
// Dispatch: one thread per output element, 64 per workgroup, 2-D grid.

struct Params {
    n: u32,
    dim: u32,
    rows: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;

@compute @workgroup_size(64)
fn gather(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (e >= P.n * P.dim) {
        return;
    }
    let i = e / P.dim;
    let c = e % P.dim;
    let row = min(ids[i], P.rows - 1u);
    out[e] = table[row * P.dim + c];
}
