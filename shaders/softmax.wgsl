// Row-wise softmax kernels over logits x of shape [rows, cols], one
// workgroup of 64 threads per row (2-D grid of workgroups, x-major).
//
// Bindings:
//   0: out     array<f32>, read_write. xent_rows: [rows], each row's loss
//              lse(x[r]) - x[r, labels[r]] (the mean is taken by
//              reduce.wgsl's mean_all). xent_grad, log_softmax: [rows, cols].
//   1: P       uniform Params: rows, cols.
//   2: x       array<f32>, read: the logits, [rows, cols].
//   3: labels  array<u32>, read: [rows], each < cols (checked on the host;
//              clamped here only to stay in bounds). xent_* only.
//   4: grad    array<f32>, read: one element, the upstream gradient of the
//              mean loss. xent_grad only.

struct Params {
    rows: u32,
    cols: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;

const WG: u32 = 64u;
var<workgroup> part: array<f32, 64>;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn tree_max(t: u32) -> f32 {
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        workgroupBarrier();
        if (t < s) {
            let a = part[t];
            let b = part[t + s];
            part[t] = select(b, a, is_nan(a) || a >= b);
        }
    }
    return workgroupUniformLoad(&part[0]);
}

fn tree_sum(t: u32) -> f32 {
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        workgroupBarrier();
        if (t < s) {
            part[t] = part[t] + part[t + s];
        }
    }
    return workgroupUniformLoad(&part[0]);
}

// log Σ exp(x[row, :]), shifted by the row max for range; -inf for a row
// of -inf (as on the CPU). All threads of the workgroup get the value.
fn row_lse(row: u32, t: u32) -> f32 {
    let base = row * P.cols;
    var m = bitcast<f32>(0xff800000u);
    for (var c = t; c < P.cols; c += WG) {
        let v = x[base + c];
        m = select(m, v, is_nan(v) || v > m);
    }
    part[t] = m;
    let mx = tree_max(t);
    var s = 0.0;
    for (var c = t; c < P.cols; c += WG) {
        s += exp(x[base + c] - mx);
    }
    // Every thread has read the max from part[0] before it is overwritten.
    workgroupBarrier();
    part[t] = s;
    let total = tree_sum(t);
    return select(mx + log(total), mx, mx == bitcast<f32>(0xff800000u));
}

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(64)
fn xent_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let row = row_of(wid, nwg);
    if (row >= P.rows) {
        return;
    }
    let lse = row_lse(row, t);
    if (t == 0u) {
        let label = min(labels[row], P.cols - 1u);
        out[row] = lse - x[row * P.cols + label];
    }
}

@compute @workgroup_size(64)
fn xent_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let row = row_of(wid, nwg);
    if (row >= P.rows) {
        return;
    }
    let lse = row_lse(row, t);
    let scale = grad[0] / f32(max(P.rows, 1u));
    let label = labels[row];
    let base = row * P.cols;
    for (var c = t; c < P.cols; c += WG) {
        let p = exp(x[base + c] - lse);
        out[base + c] = (p - select(0.0, 1.0, c == label)) * scale;
    }
}

@compute @workgroup_size(64)
fn log_softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let row = row_of(wid, nwg);
    if (row >= P.rows) {
        return;
    }
    let lse = row_lse(row, t);
    let base = row * P.cols;
    for (var c = t; c < P.cols; c += WG) {
        out[base + c] = x[base + c] - lse;
    }
}
