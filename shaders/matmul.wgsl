// Tiled matmul template: out[r, c] = epilogue(Σ_k A[r, k] · B[k, c], r, c).
// The epilogue (an element-wise expression of `acc` and extra inputs viewed
// over [m, n]) is filled in by src/backend/wgpu/emit.rs; bare, it is `acc`.
//
// Bindings:
//   0: out  array<f32>, read_write: [m, n], dense.
//   1: P    uniform Params: dims = (m, k, n, 0); epi[j].xyz = row
//           stride, column stride and offset of epilogue input j's view
//           over [m, n].
//   2: a    array<vec4<f32>>, read: A as [m, k], or [k, m] when TRANS_A.
//   3: b    array<vec4<f32>>, read: B as [k, n], or [n, k] when TRANS_B.
//           Both are bound as vec4 arrays (buffer bindings are padded to 16
//           bytes) so that VEC_A/VEC_B can load four values at once; scalar
//           reads pick a component.
//   4..: epilogue inputs, declared by the emitter at the BINDINGS marker.
//
// Overrides: TRANS_A, TRANS_B as above. VEC_A (VEC_B): the operand's
// contiguous dimension is a multiple of 4, so a run of four along it that
// starts at a multiple of 4 is one aligned vec4.
//
// Tiling: one workgroup computes a 64×64 block of `out` with 8×8 threads,
// each an 8×8 block held in registers (16 vec4 accumulators); K advances
// 16 at a time through workgroup tiles, each thread staging four runs of
// four of A and of B. 8×8 per thread does four vec4 FMAs per shared load,
// twice what 4×4 does.
// Dispatch: (ceil(n / 64), ceil(m / 64), 1).

struct Params {
    dims: vec4<u32>,
    epi: array<vec4<u32>, 16>,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@group(0) @binding(2) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b: array<vec4<f32>>;
//@BINDINGS

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC_A: bool = false;
override VEC_B: bool = false;

const TILE: u32 = 64u;
const TK: u32 = 16u;

// As[kk * 16 + r / 4][r % 4] = A[m0 + r, k0 + kk]; Bs likewise with columns.
// Four consecutive rows (columns) share a vec4, which the inner loop reads.
var<workgroup> As: array<vec4<f32>, 256>;
var<workgroup> Bs: array<vec4<f32>, 256>;

//@EXPR_FNS

fn epi_offset(j: u32, row: u32, col: u32) -> u32 {
    return P.epi[j].z + row * P.epi[j].x + col * P.epi[j].y;
}

fn epilogue(acc: f32, row: u32, col: u32) -> f32 {
//@LOADS
    return /*@EXPR*/acc;
}

fn load_a(idx: u32) -> f32 {
    return a[idx / 4u][idx % 4u];
}

fn load_b(idx: u32) -> f32 {
    return b[idx / 4u][idx % 4u];
}

// Four values of A along its contiguous dimension, starting at (r, kk)
// [not transposed: kk..kk+3] or (r..r+3, kk) [transposed]; zero outside.
fn run_a(r: u32, kk: u32) -> vec4<f32> {
    let m = P.dims.x;
    let k = P.dims.y;
    var v = vec4<f32>(0.0);
    if (!TRANS_A) {
        if (r >= m) {
            return v;
        }
        let base = r * k + kk;
        if (VEC_A && kk + 3u < k) {
            return a[base / 4u];
        }
        for (var c = 0u; c < 4u; c++) {
            if (kk + c < k) {
                v[c] = load_a(base + c);
            }
        }
    } else {
        if (kk >= k) {
            return v;
        }
        let base = kk * m + r;
        if (VEC_A && r + 3u < m) {
            return a[base / 4u];
        }
        for (var c = 0u; c < 4u; c++) {
            if (r + c < m) {
                v[c] = load_a(base + c);
            }
        }
    }
    return v;
}

// Four values of B along its contiguous dimension from (kk, col):
// [not transposed: col..col+3] or [transposed: kk..kk+3]; zero outside.
fn run_b(kk: u32, col: u32) -> vec4<f32> {
    let k = P.dims.y;
    let n = P.dims.z;
    var v = vec4<f32>(0.0);
    if (!TRANS_B) {
        if (kk >= k) {
            return v;
        }
        let base = kk * n + col;
        if (VEC_B && col + 3u < n) {
            return b[base / 4u];
        }
        for (var c = 0u; c < 4u; c++) {
            if (col + c < n) {
                v[c] = load_b(base + c);
            }
        }
    } else {
        if (col >= n) {
            return v;
        }
        let base = col * k + kk;
        if (VEC_B && kk + 3u < k) {
            return b[base / 4u];
        }
        for (var c = 0u; c < 4u; c++) {
            if (kk + c < k) {
                v[c] = load_b(base + c);
            }
        }
    }
    return v;
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let m = P.dims.x;
    let k = P.dims.y;
    let n = P.dims.z;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    let tx = t % 8u;
    let ty = t / 8u;
    // acc[2 * i + h] holds row ty*8+i, columns tx*8+4h .. tx*8+4h+3.
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < k; k0 += TK) {
        for (var h = 0u; h < 4u; h++) {
            let u = t + h * 64u;
            if (!TRANS_A) {
                let r = u / 4u;
                let kq = (u % 4u) * 4u;
                let v = run_a(m0 + r, k0 + kq);
                for (var c = 0u; c < 4u; c++) {
                    As[(kq + c) * 16u + r / 4u][r % 4u] = v[c];
                }
            } else {
                let kk = u / 16u;
                let rq = (u % 16u) * 4u;
                As[kk * 16u + rq / 4u] = run_a(m0 + rq, k0 + kk);
            }
            if (!TRANS_B) {
                let kk = u / 16u;
                let cq = (u % 16u) * 4u;
                Bs[kk * 16u + cq / 4u] = run_b(k0 + kk, n0 + cq);
            } else {
                let col = u / 4u;
                let kq = (u % 4u) * 4u;
                let v = run_b(k0 + kq, n0 + col);
                for (var c = 0u; c < 4u; c++) {
                    Bs[(kq + c) * 16u + col / 4u][col % 4u] = v[c];
                }
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a0 = As[kk * 16u + ty * 2u];
            let a1 = As[kk * 16u + ty * 2u + 1u];
            let b0 = Bs[kk * 16u + tx * 2u];
            let b1 = Bs[kk * 16u + tx * 2u + 1u];
            for (var i = 0u; i < 4u; i++) {
                acc[2u * i] += a0[i] * b0;
                acc[2u * i + 1u] += a0[i] * b1;
                acc[8u + 2u * i] += a1[i] * b0;
                acc[9u + 2u * i] += a1[i] * b1;
            }
        }
        workgroupBarrier();
    }
    // Constant trip counts (no break) let the compiler unroll these loops
    // and keep `acc` in registers.
    for (var i = 0u; i < 8u; i++) {
        let row = m0 + ty * 8u + i;
        for (var j = 0u; j < 8u; j++) {
            let col = n0 + tx * 8u + j;
            if (row < m && col < n) {
                out[row * n + col] = epilogue(acc[2u * i + j / 4u][j % 4u], row, col);
            }
        }
    }
}
