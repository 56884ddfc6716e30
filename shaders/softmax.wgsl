// Row-wise softmax kernels over logits x of shape [rows, cols], one
// workgroup of 64 threads per row (2-D grid of workgroups, x-major).
//
// Bindings:
//   0: out     array<f32>, read_write. xent_rows: [rows], each row's loss
//              log Σ exp(x[r] - m) - (x[r, labels[r]] - m), m the row max
//              (the mean is taken by
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

// The row's max m and log Σ exp(x[row, :] - m), as (m, log_sum). Outputs
// are formed as (x - m) - log_sum: adding m back first would round every
// output to the precision of m (5e-4 at logits of 1e4). A row without a
// finite max (all -inf, or a +inf/NaN) uses m = 0, as on the CPU. All
// threads of the workgroup get the values.
fn row_stats(row: u32, t: u32) -> vec2<f32> {
    let base = row * P.cols;
    var m = bitcast<f32>(0xff800000u);
    for (var c = t; c < P.cols; c += WG) {
        let v = x[base + c];
        m = select(m, v, is_nan(v) || v > m);
    }
    part[t] = m;
    let mx = tree_max(t);
    let finite = !is_nan(mx) && abs(mx) <= 3.4028235e38;
    let shift = select(0.0, mx, finite);
    var s = 0.0;
    for (var c = t; c < P.cols; c += WG) {
        s += exp(x[base + c] - shift);
    }
    // Every thread has read the max from part[0] before it is overwritten.
    workgroupBarrier();
    part[t] = s;
    let total = tree_sum(t);
    return vec2<f32>(shift, log(total));
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
    let st = row_stats(row, t);
    if (t == 0u) {
        let label = min(labels[row], P.cols - 1u);
        out[row] = st.y - (x[row * P.cols + label] - st.x);
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
    let st = row_stats(row, t);
    let scale = grad[0] / f32(max(P.rows, 1u));
    let label = labels[row];
    let base = row * P.cols;
    for (var c = t; c < P.cols; c += WG) {
        let p = exp((x[base + c] - st.x) - st.y);
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
    let st = row_stats(row, t);
    let base = row * P.cols;
    for (var c = t; c < P.cols; c += WG) {
        out[base + c] = (x[base + c] - st.x) - st.y;
    }
}
