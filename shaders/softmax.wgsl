// Row-wise softmax kernels over logits x of shape [rows, cols]. Two
// layouts: one workgroup of 64 threads per row (2-D grid of workgroups,
// x-major), for wide rows; and, for narrow rows (the `_serial` entry
// points), one thread per row, 64 rows per workgroup (2-D grid), with no
// reduction across threads. The emitter may replace the workgroup
// reduction between WG_REDUCE_BEGIN and WG_REDUCE_END with
// shaders/subgroup.wgsl (see reduce.wgsl).
//
// Bindings:
//   0: out     array<f32>, read_write. xent_rows: [rows], each row's loss
//              log Σ exp(x[r] - m) - (x[r, labels[r]] - m), m the row max
//              (the mean is taken by reduce.wgsl's mean_all). xent_grad,
//              xent_both, log_softmax: [rows, cols].
//   1: P       uniform Params: rows, cols.
//   2: x       array<f32>, read: the logits, [rows, cols].
//   3: labels  array<u32>, read: [rows], each < cols (checked on the host;
//              clamped here only to stay in bounds). xent_* only.
//   4: grad    array<f32>, read: one element, the upstream gradient of the
//              mean loss. xent_grad and xent_both only.
//   5: losses  array<f32>, read_write: [rows], each row's loss, as
//              xent_rows writes it. xent_both only: it writes the gradient
//              and the row losses from one pass over the logits.
//
// Every index is bounded by rows and cols, which the backend checks
// against the slots (a label only selects, or is clamped).

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
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;

const WG: u32 = 64u;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

//@WG_REDUCE_BEGIN
var<workgroup> part: array<f32, 64>;

// The combination (max or sum) of `v` over the workgroup's `count`
// threads, in a fixed order (a halving tree over `part`); every thread
// gets it. Called in uniform control flow; `count` is a power of two.
fn wg_reduce(v: f32, t: u32, count: u32, is_max: bool) -> f32 {
    workgroupBarrier();
    part[t] = v;
    for (var s = count / 2u; s > 0u; s /= 2u) {
        workgroupBarrier();
        if (t < s) {
            let a = part[t];
            let b = part[t + s];
            part[t] = select(a + b, select(b, a, is_nan(a) || a >= b), is_max);
        }
    }
    return workgroupUniformLoad(&part[0]);
}
//@WG_REDUCE_END

// The shift that keeps exp() in range: the row max, or 0 when the max is
// not finite (all -inf, or a +inf/NaN), as on the CPU.
fn shift_of(mx: f32) -> f32 {
    let finite = !is_nan(mx) && abs(mx) <= 3.4028235e38;
    return select(0.0, mx, finite);
}

// The row's max m and log Σ exp(x[row, :] - m), as (m, log_sum). Outputs
// are formed as (x - m) - log_sum: adding m back first would round every
// output to the precision of m (5e-4 at logits of 1e4). All threads of the
// workgroup get the values.
fn row_stats(row: u32, t: u32) -> vec2<f32> {
    let base = row * P.cols;
    var m = bitcast<f32>(0xff800000u);
    for (var c = t; c < P.cols; c += WG) {
        let v = x[base + c];
        m = select(m, v, is_nan(v) || v > m);
    }
    let shift = shift_of(wg_reduce(m, t, WG, true));
    var s = 0.0;
    for (var c = t; c < P.cols; c += WG) {
        s += exp(x[base + c] - shift);
    }
    let total = wg_reduce(s, t, WG, false);
    return vec2<f32>(shift, log(total));
}

// The same, for a row one thread handles alone.
fn row_stats_serial(row: u32) -> vec2<f32> {
    let base = row * P.cols;
    var m = bitcast<f32>(0xff800000u);
    for (var c = 0u; c < P.cols; c++) {
        let v = x[base + c];
        m = select(m, v, is_nan(v) || v > m);
    }
    let shift = shift_of(m);
    var s = 0.0;
    for (var c = 0u; c < P.cols; c++) {
        s += exp(x[base + c] - shift);
    }
    return vec2<f32>(shift, log(s));
}

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

fn row_loss(row: u32, st: vec2<f32>) -> f32 {
    let label = min(labels[row], P.cols - 1u);
    return st.y - (x[row * P.cols + label] - st.x);
}

// Columns c0, c0 + step, … of the gradient row: (p - onehot) · grad / rows.
fn grad_row(row: u32, st: vec2<f32>, c0: u32, step: u32) {
    let scale = grad[0] / f32(max(P.rows, 1u));
    let label = labels[row];
    let base = row * P.cols;
    for (var c = c0; c < P.cols; c += step) {
        let p = exp((x[base + c] - st.x) - st.y);
        out[base + c] = (p - select(0.0, 1.0, c == label)) * scale;
    }
}

@compute @workgroup_size(64)
fn xent_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    /*@SG_ARGS*/
) {
    //@SG_INIT
    let row = row_of(wid, nwg);
    if (row >= P.rows) {
        return;
    }
    let st = row_stats(row, t);
    if (t == 0u) {
        out[row] = row_loss(row, st);
    }
}

@compute @workgroup_size(64)
fn xent_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    /*@SG_ARGS*/
) {
    //@SG_INIT
    let row = row_of(wid, nwg);
    if (row >= P.rows) {
        return;
    }
    let st = row_stats(row, t);
    grad_row(row, st, t, WG);
}

@compute @workgroup_size(64)
fn xent_both(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    /*@SG_ARGS*/
) {
    //@SG_INIT
    let row = row_of(wid, nwg);
    if (row >= P.rows) {
        return;
    }
    let st = row_stats(row, t);
    grad_row(row, st, t, WG);
    if (t == 0u) {
        losses[row] = row_loss(row, st);
    }
}

@compute @workgroup_size(64)
fn log_softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    /*@SG_ARGS*/
) {
    //@SG_INIT
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

// One thread per row.
fn serial_row(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn xent_rows_serial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = serial_row(wid, nwg, lid);
    if (row >= P.rows) {
        return;
    }
    out[row] = row_loss(row, row_stats_serial(row));
}

@compute @workgroup_size(64)
fn xent_grad_serial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = serial_row(wid, nwg, lid);
    if (row >= P.rows) {
        return;
    }
    grad_row(row, row_stats_serial(row), 0u, 1u);
}

@compute @workgroup_size(64)
fn xent_both_serial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = serial_row(wid, nwg, lid);
    if (row >= P.rows) {
        return;
    }
    let st = row_stats_serial(row);
    grad_row(row, st, 0u, 1u);
    losses[row] = row_loss(row, st);
}

@compute @workgroup_size(64)
fn log_softmax_serial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = serial_row(wid, nwg, lid);
    if (row >= P.rows) {
        return;
    }
    let st = row_stats_serial(row);
    let base = row * P.cols;
    for (var c = 0u; c < P.cols; c++) {
        out[base + c] = (x[base + c] - st.x) - st.y;
    }
}
