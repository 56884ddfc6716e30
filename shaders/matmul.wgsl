// Tiled matmul template: out[r, c] = epilogue(Σ_k A[r, k] · B[k, c], r, c).
// The epilogue (an element-wise expression of `acc` and extra inputs viewed
// over [m, n]) is filled in by src/backend/wgpu/emit.rs; bare, it is `acc`.
// So is the tiling: the constants between TILING_BEGIN and TILING_END are
// replaced by a variant's (src/backend/wgpu/variants.rs); the ones below
// are the default variant, so the bare template is valid WGSL.
//
// Bindings:
//   0: out  array<f32>, read_write: [m, n], dense; with PARTIAL, the
//           split-K partial products [splits, m, n].
//   1: P    uniform Params: dims = (m, k, n, kc), kc the length of K each
//           workgroup layer z sums (k without split-K; a multiple of TK);
//           for reduce_splits, dims.w is the number of splits. epi[j].xyz =
//           row stride, column stride and offset of epilogue input j's view
//           over [m, n].
//   2: a    array<vec4<f32>>, read: A as [m, k], or [k, m] when TRANS_A;
//           for reduce_splits, the partial products.
//   3: b    array<vec4<f32>>, read: B as [k, n], or [n, k] when TRANS_B.
//           Both are bound as vec4 arrays (buffer bindings are padded to 16
//           bytes) so that VEC_A/VEC_B can load four values at once; scalar
//           reads pick a component. reduce_splits does not read it.
//   4..: epilogue inputs, declared by the emitter at the BINDINGS marker.
//
// Overrides: TRANS_A, TRANS_B as above. VEC_A (VEC_B): the operand's
// contiguous dimension is a multiple of 4, so a run of four along it that
// starts at a multiple of 4 is one aligned vec4. PARTIAL: store the raw
// sums of K range [z·kc, (z+1)·kc) at layer z of `out` (split-K; the
// epilogue runs in reduce_splits).
//
// Tiling: one workgroup computes a BM×BN block of `out` with
// (BM/TM)×(BN/TN) threads, each a TM×TN block held in registers (TM·TN/4
// vec4 accumulators); K advances TK at a time through workgroup tiles, each
// thread staging runs of four of A and of B. Every index below is bounded
// by m, k (kc) and n, which the backend checks against the slots, so the
// module may be created without runtime bounds checks.
// Dispatch: main (ceil(n / BN), ceil(m / BM), splits); reduce_splits one
// thread per output element, 64 per workgroup, 2-D grid.

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
override PARTIAL: bool = false;

//@TILING_BEGIN
const BM: u32 = 64u;
const BN: u32 = 64u;
const TM: u32 = 8u;
const TN: u32 = 8u;
const TK: u32 = 16u;
//@TILING_END

const GN: u32 = BN / TN;
const THREADS: u32 = (BM / TM) * GN;
// Runs of four each thread stages per K step.
const RUNS_A: u32 = BM * TK / 4u / THREADS;
const RUNS_B: u32 = BN * TK / 4u / THREADS;

// As[kk * BM/4 + r / 4][r % 4] = A[m0 + r, k0 + kk]; Bs likewise with
// columns. Four consecutive rows (columns) share a vec4, which the inner
// loop reads.
var<workgroup> As: array<vec4<f32>, TK * BM / 4u>;
var<workgroup> Bs: array<vec4<f32>, TK * BN / 4u>;

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
// [not transposed: kk..kk+3] or (r..r+3, kk) [transposed]; zero outside
// rows [0, m) and K range [0, kend).
fn run_a(r: u32, kk: u32, kend: u32) -> vec4<f32> {
    let m = P.dims.x;
    let k = P.dims.y;
    var v = vec4<f32>(0.0);
    if (!TRANS_A) {
        if (r >= m) {
            return v;
        }
        let base = r * k + kk;
        if (VEC_A && kk + 3u < kend) {
            return a[base / 4u];
        }
        for (var c = 0u; c < 4u; c++) {
            if (kk + c < kend) {
                v[c] = load_a(base + c);
            }
        }
    } else {
        if (kk >= kend) {
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
fn run_b(kk: u32, col: u32, kend: u32) -> vec4<f32> {
    let k = P.dims.y;
    let n = P.dims.z;
    var v = vec4<f32>(0.0);
    if (!TRANS_B) {
        if (kk >= kend) {
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
        if (VEC_B && kk + 3u < kend) {
            return b[base / 4u];
        }
        for (var c = 0u; c < 4u; c++) {
            if (kk + c < kend) {
                v[c] = load_b(base + c);
            }
        }
    }
    return v;
}

@compute @workgroup_size(THREADS)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let m = P.dims.x;
    let k = P.dims.y;
    let n = P.dims.z;
    let m0 = wid.y * BM;
    let n0 = wid.x * BN;
    let kbegin = wid.z * P.dims.w;
    let kend = min(k, kbegin + P.dims.w);
    let tx = t % GN;
    let ty = t / GN;
    // acc[i * TN/4 + j4] holds row ty*TM+i, columns tx*TN+4*j4 .. +3.
    var acc: array<vec4<f32>, TM * TN / 4u>;
    var ra: array<vec4<f32>, TM / 4u>;
    var rb: array<vec4<f32>, TN / 4u>;
    for (var k0 = kbegin; k0 < kend; k0 += TK) {
        for (var h = 0u; h < RUNS_A; h++) {
            let u = t + h * THREADS;
            if (!TRANS_A) {
                let r = u / (TK / 4u);
                let kq = (u % (TK / 4u)) * 4u;
                let v = run_a(m0 + r, k0 + kq, kend);
                for (var c = 0u; c < 4u; c++) {
                    As[(kq + c) * (BM / 4u) + r / 4u][r % 4u] = v[c];
                }
            } else {
                let kk = u / (BM / 4u);
                let rq = (u % (BM / 4u)) * 4u;
                As[kk * (BM / 4u) + rq / 4u] = run_a(m0 + rq, k0 + kk, kend);
            }
        }
        for (var h = 0u; h < RUNS_B; h++) {
            let u = t + h * THREADS;
            if (!TRANS_B) {
                let kk = u / (BN / 4u);
                let cq = (u % (BN / 4u)) * 4u;
                Bs[kk * (BN / 4u) + cq / 4u] = run_b(k0 + kk, n0 + cq, kend);
            } else {
                let col = u / (TK / 4u);
                let kq = (u % (TK / 4u)) * 4u;
                let v = run_b(k0 + kq, n0 + col, kend);
                for (var c = 0u; c < 4u; c++) {
                    Bs[(kq + c) * (BN / 4u) + col / 4u][col % 4u] = v[c];
                }
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            for (var i4 = 0u; i4 < TM / 4u; i4++) {
                ra[i4] = As[kk * (BM / 4u) + ty * (TM / 4u) + i4];
            }
            for (var j4 = 0u; j4 < TN / 4u; j4++) {
                rb[j4] = Bs[kk * (BN / 4u) + tx * (TN / 4u) + j4];
            }
            for (var i = 0u; i < TM; i++) {
                let av = ra[i / 4u][i % 4u];
                for (var j4 = 0u; j4 < TN / 4u; j4++) {
                    acc[i * (TN / 4u) + j4] += av * rb[j4];
                }
            }
        }
        workgroupBarrier();
    }
    // Constant trip counts (no break) let the compiler unroll these loops
    // and keep `acc` in registers.
    for (var i = 0u; i < TM; i++) {
        let row = m0 + ty * TM + i;
        for (var j = 0u; j < TN; j++) {
            let col = n0 + tx * TN + j;
            if (row < m && col < n) {
                let v = acc[i * (TN / 4u) + j / 4u][j % 4u];
                if (PARTIAL) {
                    out[(wid.z * m + row) * n + col] = v;
                } else {
                    out[row * n + col] = epilogue(v, row, col);
                }
            }
        }
    }
}

// Split-K's second pass: out[o] = epilogue(Σ_s parts[s, o]), summed in
// the order of s, so that a run is bit-identical to the next.
@compute @workgroup_size(64)
fn reduce_splits(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m = P.dims.x;
    let n = P.dims.z;
    let o = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (o >= m * n) {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < P.dims.w; s++) {
        acc += load_a(s * m * n + o);
    }
    out[o] = epilogue(acc, o / n, o % n);
}
