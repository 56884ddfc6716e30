// Binary cross entropy with logits x and float targets t in [0, 1].
//
// Bindings:
//   0: out      array<f32>, read_write. logistic_loss: one element, the
//               mean over n of max(x, 0) - x·t + log(1 + exp(-|x|)).
//               logistic_grad: [n], (sigmoid(x) - t) · grad / n.
//   1: P        uniform Params: n.
//   2: x        array<f32>, read: [n] logits.
//   3: targets  array<f32>, read: [n].
//   4: grad     array<f32>, read: one element, the upstream gradient.
//               logistic_grad only.

struct Params {
    n: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;

const WG: u32 = 256u;
var<workgroup> part: array<f32, 256>;

// log(1 + e) accurate for small e, where 1 + e rounds (Goldberg's trick).
fn log1p(e: f32) -> f32 {
    let u = 1.0 + e;
    if (u == 1.0) {
        return e;
    }
    return log(u) * e / (u - 1.0);
}

fn sigmoid(v: f32) -> f32 {
    if (v >= 0.0) {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

// One workgroup: 256 threads stride over n, then a fixed-order tree.
@compute @workgroup_size(256)
fn logistic_loss(@builtin(local_invocation_index) t: u32) {
    var acc = 0.0;
    for (var i = t; i < P.n; i += WG) {
        let v = x[i];
        acc += max(v, 0.0) - v * targets[i] + log1p(exp(-abs(v)));
    }
    part[t] = acc;
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        workgroupBarrier();
        if (t < s) {
            part[t] = part[t] + part[t + s];
        }
    }
    workgroupBarrier();
    if (t == 0u) {
        out[0] = part[0] / f32(max(P.n, 1u));
    }
}

// One thread per element, 64 per workgroup, 2-D grid.
@compute @workgroup_size(64)
fn logistic_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (i >= P.n) {
        return;
    }
    let scale = grad[0] / f32(max(P.n, 1u));
    out[i] = (sigmoid(x[i]) - targets[i]) * scale;
}
