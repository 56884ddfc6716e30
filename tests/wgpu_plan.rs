//! Plan-level tests of the wgpu backend against the CPU reference backend,
//! on odd and round shapes. Without an adapter the tests print a skip
//! notice, unless `DELTAGRAD_REQUIRE_GPU=1` makes that a failure.
//!
//! Tolerances (both backends compute in f32; bounds are on |gpu - cpu|):
//! - sums of k terms (matmul, reduce sum, index-add): 2·k·u·Σ|terms| + 1e-6,
//!   u = 2^-24 — the standard forward error bound γ_k·Σ|terms| per backend,
//!   for any summation order, doubled for the two sides;
//! - transcendental expressions (exp, log, tanh, sigmoid, softmax, losses):
//!   relative 2e-5 + absolute 2e-6 — Vulkan allows exp/log a few ULP
//!   (3 + 2|x| ULP for exp), compounded through a handful of operations;
//! - gather, scatter-add, max, comparisons, relu: exact (no rounding, or
//!   the same additions in the same order).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use deltagrad::backend::cpu::CpuBackend;
use deltagrad::backend::wgpu::{MatmulVariant, Tuning, WgpuBackend, WgpuOptions};
use deltagrad::backend::{Backend, Storage};
use deltagrad::ir::*;
use deltagrad::{CustomOp, DType, Error, HostData, Result};

// ---------------------------------------------------------------- helpers

fn open_gpu() -> Option<WgpuBackend> {
    WgpuBackend::with_options(WgpuOptions::software_ok())
        .map_err(common::no_gpu)
        .ok()
}

/// One backend shared by the tests (pipelines are reused); tests that
/// assert on counters open their own.
fn gpu() -> Option<&'static WgpuBackend> {
    static G: OnceLock<Result<WgpuBackend, String>> = OnceLock::new();
    match G.get_or_init(|| {
        WgpuBackend::with_options(WgpuOptions::software_ok()).map_err(|e| e.to_string())
    }) {
        Ok(b) => Some(b),
        Err(e) => {
            common::no_gpu(e);
            None
        }
    }
}

static PLAN_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Default)]
struct PlanBuilder {
    slots: Vec<Slot>,
    launches: Vec<Launch>,
    n_inputs: usize,
    n_outputs: usize,
    n_temps: usize,
}

impl PlanBuilder {
    fn slot(&mut self, len: usize, dtype: DType, kind: SlotKind) -> SlotId {
        self.slots.push(Slot { len, dtype, kind });
        self.slots.len() - 1
    }
    fn input(&mut self, len: usize, dtype: DType) -> SlotId {
        self.n_inputs += 1;
        self.slot(len, dtype, SlotKind::Input(self.n_inputs - 1))
    }
    fn output(&mut self, len: usize) -> SlotId {
        self.n_outputs += 1;
        self.slot(len, DType::F32, SlotKind::Output(self.n_outputs - 1))
    }
    fn temp(&mut self, len: usize, buffer: usize) -> SlotId {
        self.n_temps = self.n_temps.max(buffer + 1);
        self.slot(len, DType::F32, SlotKind::Temp { buffer })
    }
    fn launch(&mut self, kernel: Kernel) {
        self.launches.push(Launch {
            kernel,
            fused: vec![],
        });
    }
    fn build(self) -> Plan {
        Plan {
            id: PLAN_ID.fetch_add(1, Ordering::Relaxed),
            slots: self.slots,
            launches: self.launches,
            n_inputs: self.n_inputs,
            n_outputs: self.n_outputs,
            n_temp_buffers: self.n_temps,
        }
    }
}

/// Deterministic pseudo-random values in [lo, hi).
fn data(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

fn ids(n: usize, rows: usize, seed: u64) -> Vec<u32> {
    data(n, seed, 0.0, rows as f32)
        .iter()
        .map(|&x| (x as u32).min(rows as u32 - 1))
        .collect()
}

fn run(b: &dyn Backend, plan: &Plan, inputs: &[HostData]) -> Result<Vec<HostData>> {
    let ins: Vec<Storage> = inputs.iter().map(|d| b.upload(d)).collect::<Result<_>>()?;
    let outs = b.execute(plan, &ins)?;
    outs.iter().map(|o| b.download(o)).collect()
}

/// Runs on both backends; returns (gpu, cpu) outputs as f32.
fn both(g: &WgpuBackend, plan: &Plan, inputs: &[HostData]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let f = |r: Vec<HostData>| r.iter().map(|d| d.to_f32()).collect::<Vec<_>>();
    let gv = run(g, plan, inputs).unwrap_or_else(|e| panic!("gpu: {e}"));
    let cv = run(&CpuBackend::new(), plan, inputs).unwrap_or_else(|e| panic!("cpu: {e}"));
    (f(gv), f(cv))
}

/// |g - c| <= tol(i) element-wise; NaN must match NaN, infinities exactly.
fn check(what: &str, g: &[f32], c: &[f32], tol: impl Fn(usize) -> f64) {
    assert_eq!(g.len(), c.len(), "{what}: lengths");
    for (i, (&a, &b)) in g.iter().zip(c).enumerate() {
        let ok = if a.is_nan() || b.is_nan() {
            a.is_nan() && b.is_nan()
        } else if a.is_infinite() || b.is_infinite() {
            a == b
        } else {
            ((a - b).abs() as f64) <= tol(i)
        };
        assert!(
            ok,
            "{what}: element {i}: gpu {a} vs cpu {b} (tol {})",
            tol(i)
        );
    }
}

fn rel(r: f64, a: f64, c: &[f32]) -> impl Fn(usize) -> f64 + '_ {
    move |i| a + r * c[i].abs() as f64
}

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn f32s(v: Vec<f32>) -> HostData {
    HostData::F32(v)
}

// ------------------------------------------------------------ elementwise

fn dense(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

#[test]
fn elementwise_all_ops_on_odd_shapes() {
    let Some(g) = gpu() else { return };
    let x = Expr::Input;
    let c = Expr::constant;
    use BinaryOp::*;
    use UnaryOp::*;
    // Covers every unary and binary op, constants and all access kinds.
    let e = Expr::binary(
        Add,
        Expr::binary(
            Mul,
            Expr::unary(Tanh, x(0)),
            Expr::unary(Sigmoid, Expr::binary(Sub, x(1), c(0.25))),
        ),
        Expr::binary(
            Add,
            Expr::binary(
                Div,
                Expr::unary(Log, Expr::unary(Exp, x(2))),
                Expr::unary(Sqrt, Expr::binary(Add, Expr::unary(Relu, x(0)), c(1.0))),
            ),
            Expr::binary(
                Add,
                Expr::binary(Max, Expr::unary(Neg, x(1)), Expr::unary(Recip, c(4.0))),
                Expr::binary(
                    Add,
                    Expr::binary(Gt, x(0), x(2)),
                    Expr::binary(
                        Add,
                        Expr::binary(Ge, x(0), x(0)),
                        Expr::binary(Eq, x(1), x(2)),
                    ),
                ),
            ),
        ),
    );
    for shape in [
        vec![1],
        vec![7],
        vec![33],
        vec![129],
        vec![256],
        vec![3, 5, 7],
        vec![2, 3, 4, 5],
    ] {
        let n: usize = shape.iter().product();
        let r = shape.len();
        let mut pb = PlanBuilder::default();
        let a = pb.input(n, DType::F32);
        // b is stored transposed (reversed dims) and read through strides.
        let b = pb.input(n, DType::F32);
        let mut bt = dense(&shape.iter().rev().copied().collect::<Vec<_>>());
        bt.reverse();
        // c is one row broadcast over all but the last dimension.
        let last = shape[r - 1];
        let cc = pb.input(last, DType::F32);
        let mut cs = vec![0; r];
        cs[r - 1] = 1;
        let out = pb.output(n);
        pb.launch(Kernel::Elementwise {
            shape: shape.clone(),
            inputs: vec![
                View {
                    slot: a,
                    strides: dense(&shape),
                    offset: 0,
                },
                View {
                    slot: b,
                    strides: bt,
                    offset: 0,
                },
                View {
                    slot: cc,
                    strides: cs,
                    offset: 0,
                },
            ],
            expr: e.clone(),
            out,
        });
        let plan = pb.build();
        let ins = [
            f32s(data(n, 1, -3.0, 3.0)),
            f32s(data(n, 2, -3.0, 3.0)),
            f32s(data(last, 3, -2.0, 2.0)),
        ];
        let (gv, cv) = both(g, &plan, &ins);
        check(
            &format!("elementwise {shape:?}"),
            &gv[0],
            &cv[0],
            rel(2e-5, 2e-6, &cv[0]),
        );
    }
}

#[test]
fn elementwise_special_values_match_cpu_semantics() {
    let Some(g) = gpu() else { return };
    let vals = vec![
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        100.0,
        -100.0,
        1e-30,
    ];
    let n = vals.len();
    let x = Expr::Input(0);
    for e in [
        Expr::unary(UnaryOp::Relu, x.clone()),
        Expr::unary(UnaryOp::Sigmoid, x.clone()),
        Expr::unary(UnaryOp::Tanh, x.clone()),
        Expr::binary(BinaryOp::Max, x.clone(), Expr::constant(1.0)),
        Expr::binary(BinaryOp::Max, Expr::constant(1.0), x.clone()),
        Expr::binary(BinaryOp::Gt, x.clone(), Expr::constant(0.0)),
        Expr::binary(BinaryOp::Add, x.clone(), Expr::constant(f64::INFINITY)),
    ] {
        let mut pb = PlanBuilder::default();
        let a = pb.input(n, DType::F32);
        let out = pb.output(n);
        pb.launch(Kernel::Elementwise {
            shape: vec![n],
            inputs: vec![View {
                slot: a,
                strides: vec![1],
                offset: 0,
            }],
            expr: e.clone(),
            out,
        });
        let (gv, cv) = both(g, &pb.build(), &[f32s(vals.clone())]);
        check(&format!("{e}"), &gv[0], &cv[0], |_| 1e-7);
    }
}

#[test]
fn elementwise_in_place_and_shared_temp_buffers() {
    let Some(g) = gpu() else { return };
    let (r, c) = (7, 33);
    let n = r * c;
    let mut pb = PlanBuilder::default();
    let p = pb.input(n, DType::F32);
    let grad = pb.input(n, DType::F32);
    // p -= 0.5 * grad, in place (the optimizer step).
    pb.launch(Kernel::Elementwise {
        shape: vec![n],
        inputs: vec![
            View {
                slot: p,
                strides: vec![1],
                offset: 0,
            },
            View {
                slot: grad,
                strides: vec![1],
                offset: 0,
            },
        ],
        expr: Expr::binary(
            BinaryOp::Sub,
            Expr::Input(0),
            Expr::binary(BinaryOp::Mul, Expr::constant(0.5), Expr::Input(1)),
        ),
        out: p,
    });
    // t0 = exp(grad) in temp buffer 0; t1 = t0 transposed, also in buffer 0
    // (a scheduler may share it): the read must see t0, not t1.
    let t0 = pb.temp(n, 0);
    let t1 = pb.temp(n, 0);
    let ew = |shape: Vec<usize>, slot, strides, out| Kernel::Elementwise {
        shape,
        inputs: vec![View {
            slot,
            strides,
            offset: 0,
        }],
        expr: Expr::unary(UnaryOp::Exp, Expr::Input(0)),
        out,
    };
    pb.launch(ew(vec![n], grad, vec![1], t0));
    pb.launch(ew(vec![c, r], t0, vec![1, c], t1));
    let out = pb.output(n);
    pb.launch(ew(vec![n], t1, vec![1], out));
    let plan = pb.build();
    let pv = data(n, 5, -1.0, 1.0);
    let gv = data(n, 6, -1.0, 1.0);
    let gp = g.upload(&f32s(pv.clone())).unwrap();
    let gg = g.upload(&f32s(gv.clone())).unwrap();
    let outs = g.execute(&plan, &[gp.clone(), gg]).unwrap();
    let cpu = CpuBackend::new();
    let cp = cpu.upload(&f32s(pv)).unwrap();
    let cg = cpu.upload(&f32s(gv)).unwrap();
    let couts = cpu.execute(&plan, &[cp.clone(), cg]).unwrap();
    let (a, b) = (
        g.download(&gp).unwrap().to_f32(),
        cpu.download(&cp).unwrap().to_f32(),
    );
    check("in-place p", &a, &b, |_| 0.0);
    let (a, b) = (
        g.download(&outs[0]).unwrap().to_f32(),
        cpu.download(&couts[0]).unwrap().to_f32(),
    );
    check("shared temp", &a, &b, rel(2e-5, 2e-6, &b));
}

#[test]
fn elementwise_over_65535_workgroups_uses_a_2d_grid() {
    let Some(g) = gpu() else { return };
    // 5M elements / 64 per workgroup = 78,125 workgroups > 65,535.
    let n = 5_000_000;
    let mut pb = PlanBuilder::default();
    let a = pb.input(n, DType::F32);
    let out = pb.output(n);
    pb.launch(Kernel::Elementwise {
        shape: vec![n],
        inputs: vec![View {
            slot: a,
            strides: vec![1],
            offset: 0,
        }],
        expr: Expr::binary(
            BinaryOp::Add,
            Expr::binary(BinaryOp::Mul, Expr::Input(0), Expr::constant(2.0)),
            Expr::constant(1.0),
        ),
        out,
    });
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let r = run(g, &pb.build(), &[f32s(x.clone())]).unwrap()[0].to_f32();
    for (i, (&y, &x)) in r.iter().zip(&x).enumerate() {
        assert_eq!(y, x * 2.0 + 1.0, "element {i}");
    }
}

#[test]
fn elementwise_rank_over_limit_is_an_error() {
    let Some(g) = gpu() else { return };
    let shape = vec![1; 9];
    let mut pb = PlanBuilder::default();
    let a = pb.input(1, DType::F32);
    let out = pb.output(1);
    pb.launch(Kernel::Elementwise {
        shape,
        inputs: vec![View {
            slot: a,
            strides: vec![0; 9],
            offset: 0,
        }],
        expr: Expr::Input(0),
        out,
    });
    let e = run(g, &pb.build(), &[f32s(vec![1.0])]).unwrap_err();
    assert!(e.to_string().contains("rank"), "{e}");
}

// ---------------------------------------------------------------- matmul

fn matmul_plan(m: usize, k: usize, n: usize, ta: bool, tb: bool, epilogue: bool) -> Plan {
    let mut pb = PlanBuilder::default();
    let a = pb.input(m * k, DType::F32);
    let b = pb.input(k * n, DType::F32);
    let epilogue = epilogue.then(|| {
        let bias = pb.input(n, DType::F32);
        Epilogue {
            inputs: vec![View {
                slot: bias,
                strides: vec![0, 1],
                offset: 0,
            }],
            expr: Expr::unary(
                UnaryOp::Relu,
                Expr::binary(BinaryOp::Add, Expr::Acc, Expr::Input(0)),
            ),
        }
    });
    let out = pb.output(m * n);
    pb.launch(Kernel::Matmul {
        m,
        k,
        n,
        a,
        b,
        trans_a: ta,
        trans_b: tb,
        epilogue,
        out,
    });
    pb.build()
}

/// Σ_k |A[r,k]·B[k,c]| for the error bound.
fn abs_products(
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
) -> Vec<f64> {
    let at = |r: usize, j: usize| if ta { a[j * m + r] } else { a[r * k + j] } as f64;
    let bt = |j: usize, c: usize| if tb { b[c * k + j] } else { b[j * n + c] } as f64;
    let mut s = vec![0.0; m * n];
    for r in 0..m {
        for c in 0..n {
            s[r * n + c] = (0..k).map(|j| (at(r, j) * bt(j, c)).abs()).sum();
        }
    }
    s
}

#[test]
fn matmul_shapes_transposes_and_epilogue() {
    let Some(g) = gpu() else { return };
    let shapes = [
        (1, 1, 1),
        (7, 7, 7),
        (1, 33, 7),
        (33, 7, 129),
        (129, 33, 1),
        (64, 256, 64),
        (7, 129, 33),
        (256, 4, 8),
        (33, 0, 5),
    ];
    for &(m, k, n) in &shapes {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for epi in [false, true] {
                let plan = matmul_plan(m, k, n, ta, tb, epi);
                let a = data(m * k, 11, -1.0, 1.0);
                let b = data(k * n, 12, -1.0, 1.0);
                let bias = data(n, 13, -0.5, 0.5);
                let mut ins = vec![f32s(a.clone()), f32s(b.clone())];
                if epi {
                    ins.push(f32s(bias));
                }
                let (gv, cv) = both(g, &plan, &ins);
                let s = abs_products(&a, &b, m, k, n, ta, tb);
                let what = format!("matmul {m}x{k}x{n} ta={ta} tb={tb} epilogue={epi}");
                check(&what, &gv[0], &cv[0], |i| 2.0 * k as f64 * U * s[i] + 1e-6);
            }
        }
    }
}

#[test]
fn matmul_epilogue_reads_in_place_and_strided_inputs() {
    let Some(g) = gpu() else { return };
    let (m, k, n) = (33, 17, 20);
    let mut pb = PlanBuilder::default();
    let a = pb.input(m * k, DType::F32);
    let b = pb.input(k * n, DType::F32);
    let resid = pb.input(n * m, DType::F32);
    // t = residual transposed (strided read), then out = t + A·B where the
    // epilogue reads `t` from the buffer it writes (in place).
    let t = pb.temp(m * n, 0);
    pb.launch(Kernel::Elementwise {
        shape: vec![m, n],
        inputs: vec![View {
            slot: resid,
            strides: vec![1, m],
            offset: 0,
        }],
        expr: Expr::Input(0),
        out: t,
    });
    let out = pb.temp(m * n, 0);
    pb.launch(Kernel::Matmul {
        m,
        k,
        n,
        a,
        b,
        trans_a: false,
        trans_b: false,
        epilogue: Some(Epilogue {
            inputs: vec![View {
                slot: t,
                strides: vec![n, 1],
                offset: 0,
            }],
            expr: Expr::binary(BinaryOp::Add, Expr::Acc, Expr::Input(0)),
        }),
        out,
    });
    let fin = pb.output(m * n);
    pb.launch(Kernel::Elementwise {
        shape: vec![m * n],
        inputs: vec![View {
            slot: out,
            strides: vec![1],
            offset: 0,
        }],
        expr: Expr::Input(0),
        out: fin,
    });
    let av = data(m * k, 21, -1.0, 1.0);
    let bv = data(k * n, 22, -1.0, 1.0);
    let (gv, cv) = both(
        g,
        &pb.build(),
        &[
            f32s(av.clone()),
            f32s(bv.clone()),
            f32s(data(m * n, 23, -1.0, 1.0)),
        ],
    );
    let s = abs_products(&av, &bv, m, k, n, false, false);
    check("matmul in-place epilogue", &gv[0], &cv[0], |i| {
        2.0 * k as f64 * U * (s[i] + 1.0) + 1e-6
    });
}

// ------------------------------------------------------------- reductions

#[test]
fn reduce_sum_and_max_serial_and_tree() {
    let Some(g) = gpu() else { return };
    let shapes = [
        (1, 1, 1),
        (1, 7, 1),
        (3, 33, 5),
        (129, 7, 1),
        (2, 1000, 3),
        (1, 5000, 1),
        (4, 256, 1),
        (1, 129, 256),
        (7, 0, 3),
    ];
    for &(outer, len, inner) in &shapes {
        for op in [ReduceOp::Sum, ReduceOp::Max] {
            let mut pb = PlanBuilder::default();
            let input = pb.input(outer * len * inner, DType::F32);
            let out = pb.output(outer * inner);
            pb.launch(Kernel::Reduce {
                op,
                input,
                outer,
                len,
                inner,
                epilogue: None,
                out,
            });
            let x = data(outer * len * inner, 31, -2.0, 2.0);
            let (gv, cv) = both(g, &pb.build(), &[f32s(x.clone())]);
            let what = format!("{op:?} over ({outer}, {len}, {inner})");
            match op {
                ReduceOp::Max => check(&what, &gv[0], &cv[0], |_| 0.0),
                ReduceOp::Sum => {
                    let abs = |i: usize| -> f64 {
                        let (o, c) = (i / inner, i % inner);
                        (0..len)
                            .map(|l| x[(o * len + l) * inner + c].abs() as f64)
                            .sum()
                    };
                    check(&what, &gv[0], &cv[0], |i| {
                        2.0 * len as f64 * U * abs(i) + 1e-6
                    });
                }
            }
        }
    }
}

#[test]
fn reduce_max_propagates_nan() {
    let Some(g) = gpu() else { return };
    for len in [7, 1000] {
        let mut x = data(len, 41, -1.0, 1.0);
        x[len / 2] = f32::NAN;
        let mut pb = PlanBuilder::default();
        let input = pb.input(len, DType::F32);
        let out = pb.output(1);
        pb.launch(Kernel::Reduce {
            op: ReduceOp::Max,
            input,
            outer: 1,
            len,
            inner: 1,
            epilogue: None,
            out,
        });
        let (gv, cv) = both(g, &pb.build(), &[f32s(x)]);
        assert!(
            gv[0][0].is_nan() && cv[0][0].is_nan(),
            "len {len}: {} {}",
            gv[0][0],
            cv[0][0]
        );
    }
}

// ------------------------------------------------ gather / scatter / index

#[test]
fn pad_odd_shapes_and_a_2d_grid() {
    let Some(g) = gpu() else { return };
    // (outer, len, inner, before, total); the last needs > 65535 workgroups.
    for (outer, len, inner, before, total) in [
        (3, 5, 7, 2, 9),
        (1, 1, 1, 0, 1),
        (4, 3, 1, 0, 4),
        (2, 3, 5, 1, 4),
        (1, 3, 1_500_000, 0, 3),
        (1, 1, 4_200_000, 1, 2),
    ] {
        let n = outer * len * inner;
        let mut pb = PlanBuilder::default();
        let x = pb.input(n, DType::F32);
        let out = pb.output(outer * total * inner);
        pb.launch(Kernel::Pad {
            input: x,
            outer,
            len,
            inner,
            before,
            total,
            out,
        });
        let (gv, cv) = both(g, &pb.build(), &[f32s(data(n, 5, -2.0, 2.0))]);
        check(
            &format!("pad {outer}x{len}x{inner} at {before} in {total}"),
            &gv[0],
            &cv[0],
            |_| 0.0,
        );
    }
}

#[test]
fn argmax_and_argmin_with_ties_and_nan() {
    let Some(g) = gpu() else { return };
    for (outer, len, inner) in [(1, 1, 1), (3, 7, 5), (2, 129, 3), (70, 4, 1000)] {
        let n = outer * len * inner;
        // Few distinct values (many ties), a NaN here and there.
        let mut v: Vec<f32> = data(n, 9, 0.0, 4.0).iter().map(|x| x.floor()).collect();
        for i in (0..n).step_by(37) {
            v[i] = f32::NAN;
        }
        for min in [false, true] {
            let mut pb = PlanBuilder::default();
            let x = pb.input(n, DType::F32);
            pb.n_outputs += 1;
            let out = pb.slot(outer * inner, DType::U32, SlotKind::Output(0));
            pb.launch(Kernel::ArgMax {
                input: x,
                outer,
                len,
                inner,
                min,
                out,
            });
            let plan = pb.build();
            let ins = [f32s(v.clone())];
            let gv = run(g, &plan, &ins).unwrap();
            let cv = run(&CpuBackend::new(), &plan, &ins).unwrap();
            let (HostData::U32(gi), HostData::U32(ci)) = (&gv[0], &cv[0]) else {
                panic!("argmax must produce u32");
            };
            assert_eq!(
                gi,
                ci,
                "arg{} {outer}x{len}x{inner}",
                if min { "min" } else { "max" }
            );
        }
    }
}

#[test]
fn gather_scatter_exact() {
    let Some(g) = gpu() else { return };
    for &(rows, dim, n) in &[
        (1, 1, 1),
        (7, 3, 33),
        (33, 129, 7),
        (256, 7, 1000),
        (5, 0, 4),
        (9, 4, 0),
    ] {
        let mut pb = PlanBuilder::default();
        let table = pb.input(rows * dim, DType::F32);
        let idv = pb.input(n, DType::U32);
        let src = pb.input(n * dim, DType::F32);
        let o1 = pb.output(n * dim);
        let o2 = pb.output(rows * dim);
        pb.launch(Kernel::Gather {
            table,
            ids: idv,
            rows,
            dim,
            n,
            out: o1,
        });
        pb.launch(Kernel::ScatterAdd {
            src,
            ids: idv,
            rows,
            dim,
            n,
            out: o2,
        });
        let ins = [
            f32s(data(rows * dim, 51, -1.0, 1.0)),
            HostData::U32(ids(n, rows, 52)),
            f32s(data(n * dim, 53, -1.0, 1.0)),
        ];
        let (gv, cv) = both(g, &pb.build(), &ins);
        check(
            &format!("gather {rows}x{dim} n={n}"),
            &gv[0],
            &cv[0],
            |_| 0.0,
        );
        // Same additions in the same (position) order as the CPU: exact.
        check(
            &format!("scatter {rows}x{dim} n={n}"),
            &gv[1],
            &cv[1],
            |_| 0.0,
        );
    }
}

/// The sparse update with its rate as a constant (`scale` −0.1) and as
/// data (`scale` −1 times a one-element `factor` buffer holding 0.1).
#[test]
fn index_add_in_place_sparse_update() {
    let Some(g) = gpu() else { return };
    for (&(rows, dim, n), with_factor) in [(1, 1, 1), (7, 3, 33), (129, 33, 7), (1000, 16, 256)]
        .iter()
        .flat_map(|c| [(c, false), (c, true)])
    {
        let mut pb = PlanBuilder::default();
        let target = pb.input(rows * dim, DType::F32);
        let src = pb.input(n * dim, DType::F32);
        let idv = pb.input(n, DType::U32);
        let factor = with_factor.then(|| pb.input(1, DType::F32));
        pb.launch(Kernel::IndexAddInPlace {
            src,
            ids: idv,
            scale: if with_factor { -1.0f64 } else { -0.1 }.to_bits(),
            factor,
            rows,
            dim,
            n,
            out: target,
        });
        // The plan needs an output; report a copy of the target.
        let out = pb.output(rows * dim);
        pb.launch(Kernel::Elementwise {
            shape: vec![rows * dim],
            inputs: vec![View {
                slot: target,
                strides: vec![1],
                offset: 0,
            }],
            expr: Expr::Input(0),
            out,
        });
        let t = data(rows * dim, 61, -1.0, 1.0);
        let s = data(n * dim, 62, -1.0, 1.0);
        let iv = ids(n, rows, 63);
        let mut inputs = vec![f32s(t.clone()), f32s(s.clone()), HostData::U32(iv.clone())];
        if with_factor {
            inputs.push(f32s(vec![0.1]));
        }
        let (gv, cv) = both(g, &pb.build(), &inputs);
        // Per element: |t| + Σ|0.1·s| over the ids hitting the row; the GPU
        // may fuse multiply-add, so allow the sum bound.
        let mut bound: Vec<f64> = t.iter().map(|x| x.abs() as f64).collect();
        let mut hits = vec![1.0f64; rows * dim];
        for (i, &id) in iv.iter().enumerate() {
            for c in 0..dim {
                bound[id as usize * dim + c] += 0.1 * s[i * dim + c].abs() as f64;
                hits[id as usize * dim + c] += 1.0;
            }
        }
        check(
            &format!("index_add {rows}x{dim} n={n} factor {with_factor}"),
            &gv[0],
            &cv[0],
            |i| 2.0 * hits[i] * U * bound[i] + 1e-7,
        );
    }
}

#[test]
fn scatter_and_index_add_are_bit_identical_across_runs() {
    let Some(g) = gpu() else { return };
    let (rows, dim, n) = (10, 33, 4096); // ~400 duplicates per row
    let mut pb = PlanBuilder::default();
    let target = pb.input(rows * dim, DType::F32);
    let src = pb.input(n * dim, DType::F32);
    let idv = pb.input(n, DType::U32);
    let o = pb.output(rows * dim);
    pb.launch(Kernel::ScatterAdd {
        src,
        ids: idv,
        rows,
        dim,
        n,
        out: o,
    });
    pb.launch(Kernel::IndexAddInPlace {
        src,
        ids: idv,
        scale: 1f64.to_bits(),
        factor: None,
        rows,
        dim,
        n,
        out: target,
    });
    let plan = pb.build();
    let mut results = Vec::new();
    for _ in 0..3 {
        let t = g.upload(&f32s(data(rows * dim, 71, -1.0, 1.0))).unwrap();
        let s = g.upload(&f32s(data(n * dim, 72, -1e3, 1e3))).unwrap();
        let i = g.upload(&HostData::U32(ids(n, rows, 73))).unwrap();
        let outs = g.execute(&plan, &[t.clone(), s, i]).unwrap();
        let bits = |d: HostData| d.to_f32().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        results.push((
            bits(g.download(&outs[0]).unwrap()),
            bits(g.download(&t).unwrap()),
        ));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}

#[test]
fn out_of_range_ids_are_errors() {
    let Some(g) = gpu() else { return };
    let mut pb = PlanBuilder::default();
    let table = pb.input(12, DType::F32);
    let idv = pb.input(3, DType::U32);
    let out = pb.output(12);
    pb.launch(Kernel::Gather {
        table,
        ids: idv,
        rows: 3,
        dim: 4,
        n: 3,
        out,
    });
    let e = run(
        g,
        &pb.build(),
        &[f32s(vec![0.0; 12]), HostData::U32(vec![0, 3, 1])],
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::IdOutOfRange {
                id: 3,
                position: 1,
                rows: 3,
                ..
            }
        ),
        "{e}"
    );
}

// ------------------------------------------------------- softmax / losses

#[test]
fn softmax_xent_forward_grad_and_log_softmax() {
    let Some(g) = gpu() else { return };
    for &(batch, classes) in &[(1, 1), (7, 3), (33, 129), (4, 1000), (256, 7)] {
        let mut pb = PlanBuilder::default();
        let logits = pb.input(batch * classes, DType::F32);
        let labels = pb.input(batch, DType::U32);
        let grad = pb.input(1, DType::F32);
        let loss = pb.output(1);
        let dx = pb.output(batch * classes);
        let ls = pb.output(batch * classes);
        pb.launch(Kernel::SoftmaxXent {
            logits,
            labels,
            batch,
            classes,
            out: loss,
        });
        pb.launch(Kernel::SoftmaxXentGrad {
            logits,
            labels,
            grad,
            batch,
            classes,
            out: dx,
        });
        pb.launch(Kernel::LogSoftmax {
            input: logits,
            rows: batch,
            cols: classes,
            out: ls,
        });
        let ins = [
            f32s(data(batch * classes, 81, -8.0, 8.0)),
            HostData::U32(ids(batch, classes, 82)),
            f32s(vec![1.5]),
        ];
        let (gv, cv) = both(g, &pb.build(), &ins);
        let what = format!("({batch}, {classes})");
        check(
            &format!("xent {what}"),
            &gv[0],
            &cv[0],
            rel(2e-5, 2e-6, &cv[0]),
        );
        check(
            &format!("xent grad {what}"),
            &gv[1],
            &cv[1],
            rel(2e-5, 2e-6, &cv[1]),
        );
        check(
            &format!("log_softmax {what}"),
            &gv[2],
            &cv[2],
            rel(2e-5, 2e-6, &cv[2]),
        );
    }
}

#[test]
fn logistic_loss_and_grad() {
    let Some(g) = gpu() else { return };
    for n in [1, 7, 129, 256, 5000] {
        let mut pb = PlanBuilder::default();
        let x = pb.input(n, DType::F32);
        let t = pb.input(n, DType::F32);
        let grad = pb.input(1, DType::F32);
        let loss = pb.output(1);
        let dx = pb.output(n);
        pb.launch(Kernel::LogisticLoss {
            logits: x,
            targets: t,
            n,
            out: loss,
        });
        pb.launch(Kernel::LogisticLossGrad {
            logits: x,
            targets: t,
            grad,
            n,
            out: dx,
        });
        let ins = [
            f32s(data(n, 91, -20.0, 20.0)),
            f32s(data(n, 92, 0.0, 1.0)),
            f32s(vec![0.5]),
        ];
        let (gv, cv) = both(g, &pb.build(), &ins);
        check(
            &format!("logistic loss n={n}"),
            &gv[0],
            &cv[0],
            rel(2e-5, 2e-6, &cv[0]),
        );
        check(
            &format!("logistic grad n={n}"),
            &gv[1],
            &cv[1],
            rel(2e-5, 2e-6, &cv[1]),
        );
    }
}

// ------------------------------------------------------------- custom op

#[derive(Debug)]
struct Cube;

impl CustomOp for Cube {
    fn name(&self) -> &str {
        "cube"
    }
    fn output_shape(&self, s: &[Vec<usize>]) -> Result<Vec<usize>> {
        Ok(s[0].clone())
    }
    fn forward(&self, x: &[Vec<f64>], _: &[Vec<usize>]) -> Result<Vec<f64>> {
        Ok(x[0].iter().map(|v| v * v * v).collect())
    }
    fn backward(&self, x: &[Vec<f64>], _: &[Vec<usize>], g: &[f64], _: usize) -> Result<Vec<f64>> {
        Ok(x[0].iter().zip(g).map(|(v, g)| 3.0 * v * v * g).collect())
    }
}

#[test]
fn custom_op_between_gpu_kernels() {
    let Some(g) = gpu() else { return };
    let n = 33;
    let mut pb = PlanBuilder::default();
    let x = pb.input(n, DType::F32);
    let t0 = pb.temp(n, 0);
    let t1 = pb.temp(n, 1);
    let t2 = pb.temp(n, 0);
    let fwd = pb.output(n);
    let bwd = pb.output(n);
    let ew = |slot, out, c| Kernel::Elementwise {
        shape: vec![n],
        inputs: vec![View {
            slot,
            strides: vec![1],
            offset: 0,
        }],
        expr: Expr::binary(BinaryOp::Add, Expr::Input(0), Expr::constant(c)),
        out,
    };
    let op: Arc<dyn CustomOp> = Arc::new(Cube);
    pb.launch(ew(x, t0, 1.0));
    pb.launch(Kernel::Custom {
        op: op.clone(),
        inputs: vec![t0],
        input_shapes: vec![vec![n]],
        backward_input: None,
        out_shape: vec![n],
        out: t1,
    });
    pb.launch(ew(t1, fwd, -1.0));
    // backward of cube at t0 with upstream gradient t1.
    pb.launch(Kernel::Custom {
        op,
        inputs: vec![t0, t1],
        input_shapes: vec![vec![n]],
        backward_input: Some(0),
        out_shape: vec![n],
        out: t2,
    });
    pb.launch(ew(t2, bwd, 0.0));
    let (gv, cv) = both(g, &pb.build(), &[f32s(data(n, 101, -1.0, 1.0))]);
    check("custom forward", &gv[0], &cv[0], rel(1e-6, 1e-7, &cv[0]));
    check("custom backward", &gv[1], &cv[1], rel(1e-6, 1e-7, &cv[1]));
}

// ------------------------------------------- replay, determinism, errors

/// Several kernel kinds in one plan, as in a training step.
fn step_plan() -> (Plan, Vec<HostData>) {
    let (b, d, h, c, rows) = (33, 16, 7, 5, 50);
    let mut pb = PlanBuilder::default();
    let emb = pb.input(rows * d, DType::F32);
    let tok = pb.input(b, DType::U32);
    let w = pb.input(d * h, DType::F32);
    let w2 = pb.input(h * c, DType::F32);
    let labels = pb.input(b, DType::U32);
    let one = pb.input(1, DType::F32);
    let x = pb.temp(b * d, 0);
    pb.launch(Kernel::Gather {
        table: emb,
        ids: tok,
        rows,
        dim: d,
        n: b,
        out: x,
    });
    let hid = pb.temp(b * h, 1);
    pb.launch(Kernel::Matmul {
        m: b,
        k: d,
        n: h,
        a: x,
        b: w,
        trans_a: false,
        trans_b: false,
        epilogue: Some(Epilogue {
            inputs: vec![],
            expr: Expr::unary(UnaryOp::Tanh, Expr::Acc),
        }),
        out: hid,
    });
    let logits = pb.temp(b * c, 0);
    pb.launch(Kernel::Matmul {
        m: b,
        k: h,
        n: c,
        a: hid,
        b: w2,
        trans_a: false,
        trans_b: false,
        epilogue: None,
        out: logits,
    });
    let loss = pb.output(1);
    pb.launch(Kernel::SoftmaxXent {
        logits,
        labels,
        batch: b,
        classes: c,
        out: loss,
    });
    let dl = pb.temp(b * c, 2);
    pb.launch(Kernel::SoftmaxXentGrad {
        logits,
        labels,
        grad: one,
        batch: b,
        classes: c,
        out: dl,
    });
    let dh = pb.temp(b * h, 0);
    pb.launch(Kernel::Matmul {
        m: b,
        k: c,
        n: h,
        a: dl,
        b: w2,
        trans_a: false,
        trans_b: true,
        epilogue: None,
        out: dh,
    });
    let dx = pb.temp(b * d, 1);
    pb.launch(Kernel::Matmul {
        m: b,
        k: h,
        n: d,
        a: dh,
        b: w,
        trans_a: false,
        trans_b: true,
        epilogue: None,
        out: dx,
    });
    pb.launch(Kernel::IndexAddInPlace {
        src: dx,
        ids: tok,
        scale: (-0.5f64).to_bits(),
        factor: None,
        rows,
        dim: d,
        n: b,
        out: emb,
    });
    let s = pb.output(c);
    pb.launch(Kernel::Reduce {
        op: ReduceOp::Sum,
        input: dl,
        outer: 1,
        len: b,
        inner: c,
        epilogue: None,
        out: s,
    });
    let ins = vec![
        f32s(data(rows * d, 111, -1.0, 1.0)),
        HostData::U32(ids(b, rows, 112)),
        f32s(data(d * h, 113, -1.0, 1.0)),
        f32s(data(h * c, 114, -1.0, 1.0)),
        HostData::U32(ids(b, c, 115)),
        f32s(vec![1.0]),
    ];
    (pb.build(), ins)
}

#[test]
fn warm_replay_creates_nothing_and_submits_once() {
    let Some(g) = open_gpu() else { return };
    let (plan, ins) = step_plan();
    let storages: Vec<Storage> = ins.iter().map(|d| g.upload(d).unwrap()).collect();
    for _ in 0..2 {
        let outs = g.execute(&plan, &storages).unwrap();
        g.download(&outs[0]).unwrap();
    }
    g.sync().unwrap();
    let before = g.counters();
    let reps = 3;
    for _ in 0..reps {
        let outs = g.execute(&plan, &storages).unwrap();
        drop(outs);
    }
    let after = g.counters();
    assert_eq!(
        after.buffers_created, before.buffers_created,
        "buffers created on replay"
    );
    assert_eq!(
        after.pipelines_created, before.pipelines_created,
        "pipelines created on replay"
    );
    assert_eq!(
        after.bind_groups_created, before.bind_groups_created,
        "bind groups created on replay"
    );
    assert_eq!(
        after.submissions - before.submissions,
        reps,
        "one submission per execute"
    );
    assert_eq!(
        after.launches - before.launches,
        reps * plan.launches.len() as u64
    );
    assert!(after.bytes_in_use > 0 && after.peak_bytes >= after.bytes_in_use);
    // New id data in the same buffers' pool: still nothing new on the device.
    let tok = g.upload(&HostData::U32(ids(33, 50, 999))).unwrap();
    let mut st = storages.clone();
    drop(std::mem::replace(&mut st[1], tok));
    let outs = g.execute(&plan, &st).unwrap();
    g.download(&outs[0]).unwrap();
    assert_eq!(g.counters().pipelines_created, before.pipelines_created);
    // forget_plan drops the cached state: the next run rebuilds bind groups.
    g.forget_plan(plan.id);
    g.execute(&plan, &storages).unwrap();
    assert!(g.counters().bind_groups_created > before.bind_groups_created);
}

#[test]
fn plan_cache_is_bounded() {
    if gpu().is_none() {
        return;
    }
    let g = WgpuBackend::with_options(WgpuOptions {
        max_cached_plans: 2,
        ..WgpuOptions::software_ok()
    })
    .unwrap();
    let plans: Vec<Plan> = (0..3)
        .map(|_| matmul_plan(7, 5, 3, false, false, false))
        .collect();
    let ins: Vec<Storage> = [f32s(data(35, 1, -1.0, 1.0)), f32s(data(15, 2, -1.0, 1.0))]
        .iter()
        .map(|d| g.upload(d).unwrap())
        .collect();
    let run_bg = |p: &Plan| {
        let before = g.counters().bind_groups_created;
        let o = g.execute(p, &ins).unwrap();
        g.download(&o[0]).unwrap();
        g.counters().bind_groups_created - before
    };
    assert_eq!(run_bg(&plans[0]), 1);
    assert_eq!(run_bg(&plans[0]), 0, "cached");
    assert_eq!(run_bg(&plans[1]), 1);
    assert_eq!(
        run_bg(&plans[2]),
        1,
        "evicts plan 0, the least recently used"
    );
    assert_eq!(run_bg(&plans[2]), 0);
    assert_eq!(run_bg(&plans[1]), 0, "plan 1 is still cached");
    assert_eq!(run_bg(&plans[0]), 1, "plan 0 was evicted");
}

#[test]
fn training_step_matches_cpu_and_is_deterministic() {
    let Some(g) = gpu() else { return };
    let (plan, ins) = step_plan();
    let a = run(g, &plan, &ins).unwrap();
    let b = run(g, &plan, &ins).unwrap();
    assert_eq!(a, b, "two runs differ");
    let c = run(&CpuBackend::new(), &plan, &ins).unwrap();
    for (k, (x, y)) in a.iter().zip(&c).enumerate() {
        let (x, y) = (x.to_f32(), y.to_f32());
        check(&format!("step output {k}"), &x, &y, rel(1e-4, 1e-5, &y));
    }
}

#[test]
fn f64_is_rejected_with_a_clear_error() {
    let Some(g) = gpu() else { return };
    let e = g.upload(&HostData::F64(vec![1.0])).unwrap_err();
    assert!(matches!(&e, Error::Gpu(m) if m.contains("f64")), "{e}");
    // A plan computing in f64 (no inputs: a constant into an f64 output).
    let mut pb = PlanBuilder::default();
    let out = pb.slot(3, DType::F64, SlotKind::Output(0));
    pb.n_outputs = 1;
    pb.launch(Kernel::Elementwise {
        shape: vec![3],
        inputs: vec![],
        expr: Expr::constant(2.5),
        out,
    });
    let plan = pb.build();
    let cpu = run(&CpuBackend::new(), &plan, &[]).unwrap();
    assert_eq!(
        cpu[0],
        HostData::F64(vec![2.5; 3]),
        "the plan itself is valid"
    );
    let e = g.execute(&plan, &[]).unwrap_err();
    assert!(matches!(&e, Error::Gpu(m) if m.contains("f64")), "{e}");
}

#[test]
fn tensor_over_binding_limit_is_a_gpu_error() {
    let Some(g) = gpu() else { return };
    let limit = g.limits().max_storage_buffer_binding_size;
    let n = (limit / 4 + 1) as usize;
    let mut pb = PlanBuilder::default();
    let a = pb.input(1, DType::F32);
    let out = pb.output(n);
    pb.launch(Kernel::Elementwise {
        shape: vec![n],
        inputs: vec![View {
            slot: a,
            strides: vec![0],
            offset: 0,
        }],
        expr: Expr::Input(0),
        out,
    });
    let e = run(g, &pb.build(), &[f32s(vec![1.0])]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Gpu(_)), "{msg}");
    assert!(
        msg.contains(&limit.to_string()) && msg.contains(&(n as u64 * 4).to_string()),
        "{msg}"
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let Some(g) = gpu() else { return };
    let plan = matmul_plan(3, 4, 5, false, false, false);
    let a = g.upload(&f32s(vec![0.0; 12])).unwrap();
    assert!(
        g.execute(&plan, std::slice::from_ref(&a)).is_err(),
        "missing input"
    );
    let short = g.upload(&f32s(vec![0.0; 19])).unwrap();
    assert!(
        g.execute(&plan, &[a.clone(), short]).is_err(),
        "short input"
    );
    let cpu = CpuBackend::new().upload(&f32s(vec![0.0; 20])).unwrap();
    assert!(g.execute(&plan, &[a, cpu.clone()]).is_err(), "cpu storage");
    assert!(g.download(&cpu).is_err());
}

// ------------------------------------------------------------ measurement

/// Matmul throughput; `cargo test --test wgpu_plan -- --ignored --nocapture`.
#[test]
#[ignore]
fn matmul_gflops() {
    let Some(g) = gpu() else { return };
    println!("adapter: {}", g.adapter_summary());
    /// Median seconds of 7 timed runs after 2 warm-ups, each including the
    /// wait for the device.
    fn median(b: &dyn Backend, plan: &Plan, ins: &[Storage]) -> f64 {
        for _ in 0..2 {
            b.execute(plan, ins).unwrap();
            b.sync().unwrap();
        }
        let mut t: Vec<f64> = (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                let o = b.execute(plan, ins).unwrap();
                b.sync().unwrap();
                drop(o);
                t.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    }
    let cpu = CpuBackend::new();
    for size in [256usize, 512, 1024] {
        let plan = matmul_plan(size, size, size, false, false, false);
        let flops = 2.0 * (size as f64).powi(3);
        let host = [
            f32s(data(size * size, 1, -1.0, 1.0)),
            f32s(data(size * size, 2, -1.0, 1.0)),
        ];
        let gi: Vec<Storage> = host.iter().map(|d| g.upload(d).unwrap()).collect();
        let ci: Vec<Storage> = host.iter().map(|d| cpu.upload(d).unwrap()).collect();
        let (tg, tc) = (median(g, &plan, &gi), median(&cpu, &plan, &ci));
        println!(
            "matmul {size}^3: wgpu median {:.2} ms = {:.2} GFLOP/s; cpu backend {:.2} ms = {:.2} GFLOP/s",
            tg * 1e3,
            flops / tg / 1e9,
            tc * 1e3,
            flops / tc / 1e9
        );
    }
}

// ------------------------------------------------------------ view offsets

/// A slice of a slot (a view with an offset): columns 2..5 of a [4, 7]
/// matrix, its transpose, and the same slice as a matmul epilogue input.
/// Checked against indexing by hand on the CPU, and GPU against CPU.
#[test]
fn views_with_offsets_read_slices() {
    let (r, c) = (4usize, 7usize);
    let x = data(r * c, 41, -1.0, 1.0);
    let mut pb = PlanBuilder::default();
    let a = pb.input(r * c, DType::F32);
    let slice = pb.output(r * 3);
    let slice_t = pb.output(3 * r);
    // out[i, j] = x[i, 2 + j]
    pb.launch(Kernel::Elementwise {
        shape: vec![r, 3],
        inputs: vec![View {
            slot: a,
            strides: vec![c, 1],
            offset: 2,
        }],
        expr: Expr::Input(0),
        out: slice,
    });
    // out[j, i] = x[i, 2 + j]
    pb.launch(Kernel::Elementwise {
        shape: vec![3, r],
        inputs: vec![View {
            slot: a,
            strides: vec![1, c],
            offset: 2,
        }],
        expr: Expr::unary(UnaryOp::Neg, Expr::Input(0)),
        out: slice_t,
    });
    // (x[:, :3]ᵀ · x[:, :3]) + x[1:4, 4:7], the last as an epilogue view.
    let mm = pb.output(9);
    pb.launch(Kernel::Matmul {
        m: 3,
        k: r,
        n: 3,
        a: slice,
        b: slice,
        trans_a: true,
        trans_b: false,
        epilogue: Some(Epilogue {
            inputs: vec![View {
                slot: a,
                strides: vec![c, 1],
                offset: c + 4,
            }],
            expr: Expr::binary(BinaryOp::Add, Expr::Acc, Expr::Input(0)),
        }),
        out: mm,
    });
    let plan = pb.build();
    let cpu = run(&CpuBackend::new(), &plan, &[f32s(x.clone())]).unwrap();
    let cv: Vec<Vec<f32>> = cpu.iter().map(|d| d.to_f32()).collect();
    for i in 0..r {
        for j in 0..3 {
            assert_eq!(cv[0][i * 3 + j], x[i * c + 2 + j]);
            assert_eq!(cv[1][j * r + i], -x[i * c + 2 + j]);
        }
    }
    for p in 0..3 {
        for q in 0..3 {
            let dot: f32 = (0..r).map(|i| x[i * c + 2 + p] * x[i * c + 2 + q]).sum();
            let want = dot + x[(1 + p) * c + 4 + q];
            assert!((cv[2][p * 3 + q] - want).abs() < 1e-5);
        }
    }
    let Some(g) = gpu() else { return };
    let (gv, cv) = both(g, &plan, &[f32s(x)]);
    check("slice", &gv[0], &cv[0], |_| 0.0);
    check("slice transposed", &gv[1], &cv[1], |_| 0.0);
    check("matmul with a sliced epilogue", &gv[2], &cv[2], |_| 1e-5);
}

// ------------------------------------------------ variants, guarded runs

/// A backend with `opts` changed from the tests' defaults, or `None`
/// (skip) without an adapter.
fn gpu_with(f: impl FnOnce(&mut WgpuOptions)) -> Option<WgpuBackend> {
    let mut opts = WgpuOptions::software_ok();
    f(&mut opts);
    match WgpuBackend::with_options(opts) {
        Ok(b) => Some(b),
        Err(e) if std::env::var("DELTAGRAD_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("DELTAGRAD_REQUIRE_GPU=1 but no GPU backend: {e}")
        }
        Err(e) => {
            eprintln!("skipping: no GPU adapter ({e})");
            None
        }
    }
}

/// Elements after each guarded slot that must keep their value.
const PAD: usize = 4096;
/// What the padding after a guarded output holds.
const SENTINEL: f32 = 7.0;

/// A plan whose kernel reads every f32 input through a copy in a buffer
/// that continues with NaN past the copy's end, and writes every output
/// into a buffer whose tail holds `SENTINEL`: a read past a slot shows up
/// as NaN in the results, a write past it as a changed sentinel. (Both
/// happen inside the buffer, where no bounds check would catch them.)
struct Guarded {
    pb: PlanBuilder,
    buffers: usize,
    /// (kernel output slot, its companion slot over the whole buffer).
    outs: Vec<(SlotId, SlotId, usize)>,
}

impl Guarded {
    fn new() -> Guarded {
        Guarded {
            pb: PlanBuilder::default(),
            buffers: 0,
            outs: vec![],
        }
    }

    fn buffer(&mut self) -> usize {
        self.buffers += 1;
        self.buffers - 1
    }

    fn fill(&mut self, slot: SlotId, len: usize, v: f32) {
        self.pb.launch(Kernel::Elementwise {
            shape: vec![len],
            inputs: vec![],
            expr: Expr::constant(v as f64),
            out: slot,
        });
    }

    /// An f32 input of `len`, read by the kernel from a NaN-tailed copy.
    fn input(&mut self, len: usize) -> SlotId {
        let src = self.pb.input(len, DType::F32);
        let b = self.buffer();
        let whole = self.pb.temp(len + PAD, b);
        self.fill(whole, len + PAD, f32::NAN);
        let copy = self.pb.temp(len, b);
        self.pb.launch(Kernel::Elementwise {
            shape: vec![len],
            inputs: vec![View::dense(src, &[len])],
            expr: Expr::Input(0),
            out: copy,
        });
        copy
    }

    /// A u32 input (ids must be plan inputs; their reads are bounded by
    /// the counts, and gathers clamp them).
    fn ids(&mut self, len: usize) -> SlotId {
        self.pb.input(len, DType::U32)
    }

    /// An output of `len` for the kernel, in a sentinel-tailed buffer.
    fn output(&mut self, len: usize) -> SlotId {
        let b = self.buffer();
        let whole = self.pb.temp(len + PAD, b);
        self.fill(whole, len + PAD, SENTINEL);
        let out = self.pb.temp(len, b);
        self.outs.push((out, whole, len));
        out
    }

    /// The plan: the kernel, then each output and each output's whole
    /// buffer copied out (outputs 2j and 2j + 1).
    fn build(mut self, kernel: Kernel) -> Plan {
        self.pb.launch(kernel);
        for (out, whole, len) in std::mem::take(&mut self.outs) {
            for (slot, n) in [(out, len), (whole, len + PAD)] {
                let o = self.pb.output(n);
                self.pb.launch(Kernel::Elementwise {
                    shape: vec![n],
                    inputs: vec![View::dense(slot, &[n])],
                    expr: Expr::Input(0),
                    out: o,
                });
            }
        }
        self.pb.build()
    }
}

/// Runs a guarded plan on `g` and the CPU; returns (gpu, cpu) kernel
/// outputs after checking every sentinel on the GPU.
fn guarded_run(
    g: &WgpuBackend,
    what: &str,
    plan: &Plan,
    inputs: &[HostData],
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let (gv, cv) = both(g, plan, inputs);
    let mut gk = vec![];
    let mut ck = vec![];
    for j in 0..gv.len() / 2 {
        let (out, whole) = (&gv[2 * j], &gv[2 * j + 1]);
        let tail = &whole[out.len()..];
        if let Some(p) = tail.iter().position(|&x| x != SENTINEL) {
            panic!(
                "{what}: output {j} written past its end: element {} is {}",
                out.len() + p,
                tail[p]
            );
        }
        gk.push(out.clone());
        ck.push(cv[2 * j].clone());
    }
    (gk, ck)
}

fn matmul_tolerance<'a>(
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    (ta, tb): (bool, bool),
    extra: f64,
) -> impl Fn(usize) -> f64 + 'a {
    let s = abs_products(a, b, m, k, n, ta, tb);
    move |i| 2.0 * k as f64 * U * (s[i] + extra) + 1e-6
}

/// The variants a test runs: every tiling, and splits of K (into an odd
/// number of ranges, and into more ranges than K has steps).
fn all_variants() -> Vec<MatmulVariant> {
    let mut v = MatmulVariant::TILINGS.to_vec();
    for name in ["32x32/4x4/k16/s3", "64x16/4x4/k16/s32"] {
        v.push(name.parse().unwrap());
    }
    v
}

#[test]
fn every_matmul_variant_matches_the_cpu_for_every_transpose_and_epilogue() {
    // Odd everywhere (scalar loads), then one element, then sizes that are
    // multiples of 4 (vector loads) with K long enough to split. (K = 0
    // and more shapes run with the default variant in
    // `matmul_shapes_transposes_and_epilogue`.) Each transpose runs with
    // an epilogue on one of the odd and the aligned shape, without on the
    // other: every variant builds eight pipelines.
    let shapes = [(33, 70, 29), (1, 1, 1), (20, 300, 12)];
    for v in all_variants() {
        let Some(g) = gpu_with(|o| o.tuning = Tuning::Fixed(v)) else {
            return;
        };
        for (i, &(m, k, n)) in shapes.iter().enumerate() {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                // The epilogue reads the bias through a broadcast view and
                // a residual through a transposed one.
                let epi = (ta ^ tb) == (i < 2);
                let mut gd = Guarded::new();
                let a = gd.input(m * k);
                let b = gd.input(k * n);
                let epilogue = epi.then(|| {
                    let bias = gd.input(n);
                    let resid = gd.input(n * m);
                    Epilogue {
                        inputs: vec![
                            View {
                                slot: bias,
                                strides: vec![0, 1],
                                offset: 0,
                            },
                            View {
                                slot: resid,
                                strides: vec![1, m],
                                offset: 0,
                            },
                        ],
                        expr: Expr::binary(
                            BinaryOp::Add,
                            Expr::unary(
                                UnaryOp::Relu,
                                Expr::binary(BinaryOp::Add, Expr::Acc, Expr::Input(0)),
                            ),
                            Expr::Input(1),
                        ),
                    }
                });
                let out = gd.output(m * n);
                let plan = gd.build(Kernel::Matmul {
                    m,
                    k,
                    n,
                    a,
                    b,
                    trans_a: ta,
                    trans_b: tb,
                    epilogue,
                    out,
                });
                let av = data(m * k, 11, -1.0, 1.0);
                let bv = data(k * n, 12, -1.0, 1.0);
                let mut ins = vec![f32s(av.clone()), f32s(bv.clone())];
                if epi {
                    ins.push(f32s(data(n, 13, -0.5, 0.5)));
                    ins.push(f32s(data(n * m, 14, -0.5, 0.5)));
                }
                let what = format!("{v}: matmul {m}x{k}x{n} ta={ta} tb={tb} epilogue={epi}");
                let (gv, cv) = guarded_run(&g, &what, &plan, &ins);
                let tol = matmul_tolerance(&av, &bv, (m, k, n), (ta, tb), 1.0);
                check(&what, &gv[0], &cv[0], tol);
            }
        }
    }
}

#[test]
fn split_k_is_bit_identical_from_run_to_run() {
    let v: MatmulVariant = "32x32/4x4/k16/s8".parse().unwrap();
    let Some(g) = gpu_with(|o| o.tuning = Tuning::Fixed(v)) else {
        return;
    };
    let (m, k, n) = (17, 1000, 9);
    let plan = matmul_plan(m, k, n, true, false, true);
    let ins = [
        f32s(data(m * k, 1, -1.0, 1.0)),
        f32s(data(k * n, 2, -1.0, 1.0)),
        f32s(data(n, 3, -1.0, 1.0)),
    ];
    let first = run(&g, &plan, &ins).unwrap();
    for _ in 0..3 {
        assert_eq!(run(&g, &plan, &ins).unwrap(), first);
    }
    // Two dispatches (partial products, then their sum), one launch.
    let before = g.counters();
    run(&g, &plan, &ins).unwrap();
    let after = g.counters();
    assert_eq!(after.launches - before.launches, 1);
    assert_eq!(after.dispatches - before.dispatches, 2);
}

/// Both reduction paths: subgroup operations (where the adapter offers
/// them; lavapipe does) and the workgroup-memory tree.
fn reduction_backends() -> Vec<(String, WgpuBackend)> {
    let mut v = vec![];
    for subgroups in [true, false] {
        let Some(g) = gpu_with(|o| o.subgroups = subgroups) else {
            return v;
        };
        if subgroups && !g.has_subgroups() {
            eprintln!("the adapter offers no subgroups: testing the tree only");
            continue;
        }
        assert!(subgroups || !g.has_subgroups());
        let name = if subgroups { "subgroups" } else { "tree" };
        v.push((name.to_string(), g));
    }
    v
}

#[test]
fn reductions_with_an_sgd_epilogue_match_the_cpu_on_both_paths() {
    // serial, tree (count < 1024), tree (long), serial (one element).
    let shapes = [
        (129, 7, 1),
        (3, 33, 5),
        (2, 1000, 3),
        (1, 1, 1),
        (1, 300, 100),
    ];
    for (path, g) in reduction_backends() {
        for &(outer, len, inner) in &shapes {
            for op in [ReduceOp::Sum, ReduceOp::Max] {
                let mut gd = Guarded::new();
                let input = gd.input(outer * len * inner);
                let param = gd.input(outer * inner);
                let scale = gd.input(1);
                // p - 0.1·acc with p dense over [outer, inner], the
                // learning rate broadcast from one element.
                let expr = Expr::binary(
                    BinaryOp::Sub,
                    Expr::Input(0),
                    Expr::binary(BinaryOp::Mul, Expr::Input(1), Expr::Acc),
                );
                let out = gd.output(outer * inner);
                let plan = gd.build(Kernel::Reduce {
                    op,
                    input,
                    outer,
                    len,
                    inner,
                    epilogue: Some(Epilogue {
                        inputs: vec![
                            View::dense(param, &[outer, inner]),
                            View {
                                slot: scale,
                                strides: vec![0, 0],
                                offset: 0,
                            },
                        ],
                        expr,
                    }),
                    out,
                });
                let x = data(outer * len * inner, 31, -2.0, 2.0);
                let p = data(outer * inner, 32, -1.0, 1.0);
                let ins = [f32s(x.clone()), f32s(p.clone()), f32s(vec![0.1])];
                let what = format!("{path}: {op:?} + SGD over ({outer}, {len}, {inner})");
                let (gv, cv) = guarded_run(&g, &what, &plan, &ins);
                let abs = |i: usize| -> f64 {
                    let (o, c) = (i / inner, i % inner);
                    (0..len)
                        .map(|l| x[(o * len + l) * inner + c].abs() as f64)
                        .sum()
                };
                check(&what, &gv[0], &cv[0], |i| {
                    2.0 * len as f64 * U * abs(i) + 4.0 * U * (p[i].abs() as f64 + abs(i)) + 1e-6
                });
            }
        }
    }
}

#[test]
fn fused_softmax_xent_equals_its_two_kernels_on_both_paths() {
    // Narrow rows (a thread per row) and wide ones (a workgroup per row).
    for (path, g) in reduction_backends() {
        for &(batch, classes) in &[(7, 3), (1, 1), (300, 5), (33, 129), (4, 1000)] {
            let mut gd = Guarded::new();
            let logits = gd.input(batch * classes);
            let labels = gd.ids(batch);
            let grad = gd.input(1);
            let loss = gd.output(1);
            let dx = gd.output(batch * classes);
            let plan = gd.build(Kernel::SoftmaxXentWithGrad {
                logits,
                labels,
                grad,
                batch,
                classes,
                out: loss,
                grad_out: dx,
            });
            let ins = [
                f32s(data(batch * classes, 81, -8.0, 8.0)),
                HostData::U32(ids(batch, classes, 82)),
                f32s(vec![1.5]),
            ];
            let what = format!("{path}: xent with grad ({batch}, {classes})");
            let (gv, cv) = guarded_run(&g, &what, &plan, &ins);
            check(&what, &gv[0], &cv[0], rel(2e-5, 2e-6, &cv[0]));
            check(&what, &gv[1], &cv[1], rel(2e-5, 2e-6, &cv[1]));
            // The separate kernels on the same backend: the same bits (the
            // same row statistics, the same ordered mean).
            let mut pb = PlanBuilder::default();
            let x = pb.input(batch * classes, DType::F32);
            let y = pb.input(batch, DType::U32);
            let gr = pb.input(1, DType::F32);
            let l = pb.output(1);
            let d = pb.output(batch * classes);
            pb.launch(Kernel::SoftmaxXent {
                logits: x,
                labels: y,
                batch,
                classes,
                out: l,
            });
            pb.launch(Kernel::SoftmaxXentGrad {
                logits: x,
                labels: y,
                grad: gr,
                batch,
                classes,
                out: d,
            });
            let sep = run(&g, &pb.build(), &ins).unwrap();
            assert_eq!(sep[0].to_f32(), gv[0], "{what}: loss");
            assert_eq!(sep[1].to_f32(), gv[1], "{what}: gradient");
        }
    }
}

/// Every other kernel whose module is trusted (no runtime bounds checks)
/// at odd sizes, in guarded buffers; those that reduce across a workgroup
/// on both reduction paths.
#[test]
fn trusted_kernels_stay_inside_their_slots() {
    for (round, (path, g)) in reduction_backends().into_iter().enumerate() {
        // Softmax kernels on narrow and wide rows.
        for &(rows, cols) in &[(7, 3), (33, 129), (2, 33)] {
            let kernels: [&dyn Fn(SlotId, SlotId, SlotId, SlotId) -> Kernel; 3] = [
                &|x, y, _, o| Kernel::SoftmaxXent {
                    logits: x,
                    labels: y,
                    batch: rows,
                    classes: cols,
                    out: o,
                },
                &|x, y, gr, o| Kernel::SoftmaxXentGrad {
                    logits: x,
                    labels: y,
                    grad: gr,
                    batch: rows,
                    classes: cols,
                    out: o,
                },
                &|x, _, _, o| Kernel::LogSoftmax {
                    input: x,
                    rows,
                    cols,
                    out: o,
                },
            ];
            for (j, make) in kernels.iter().enumerate() {
                let mut gd = Guarded::new();
                let x = gd.input(rows * cols);
                let y = gd.ids(rows);
                let gr = gd.input(1);
                let out = gd.output(if j == 0 { 1 } else { rows * cols });
                let plan = gd.build(make(x, y, gr, out));
                let ins = [
                    f32s(data(rows * cols, 71, -5.0, 5.0)),
                    HostData::U32(ids(rows, cols, 72)),
                    f32s(vec![0.75]),
                ];
                let what = format!("{path}: softmax kernel {j} ({rows}, {cols})");
                let (gv, cv) = guarded_run(&g, &what, &plan, &ins);
                check(&what, &gv[0], &cv[0], rel(2e-5, 2e-6, &cv[0]));
            }
        }
        if round > 0 {
            continue;
        }
        // The rest does not depend on the reduction path.
        // Element-wise: contiguous, broadcast, transposed and sliced reads.
        let (r, c) = (7, 13);
        let mut gd = Guarded::new();
        let x = gd.input(r * c);
        let s = gd.input(1);
        let t = gd.input(c * r);
        let w = gd.input(r * c + 3);
        let out = gd.output(r * c);
        let xi = Expr::Input;
        let plan = gd.build(Kernel::Elementwise {
            shape: vec![r, c],
            inputs: vec![
                View::dense(x, &[r, c]),
                View {
                    slot: s,
                    strides: vec![0, 0],
                    offset: 0,
                },
                View {
                    slot: t,
                    strides: vec![1, r],
                    offset: 0,
                },
                View {
                    slot: w,
                    strides: vec![c, 1],
                    offset: 3,
                },
            ],
            expr: xi(0) * xi(1) + xi(2).tanh() - xi(3),
            out,
        });
        let ins: Vec<HostData> = [r * c, 1, c * r, r * c + 3]
            .iter()
            .enumerate()
            .map(|(j, &n)| f32s(data(n, 90 + j as u64, -1.0, 1.0)))
            .collect();
        let what = format!("{path}: elementwise");
        let (gv, cv) = guarded_run(&g, &what, &plan, &ins);
        check(&what, &gv[0], &cv[0], rel(2e-5, 2e-6, &cv[0]));

        // Gather (ids clamp on the device; checked on the host).
        for &(rows, dim, n) in &[(7, 3, 33), (33, 129, 7), (1, 1, 1)] {
            let mut gd = Guarded::new();
            let table = gd.input(rows * dim);
            let idv = gd.ids(n);
            let out = gd.output(n * dim);
            let plan = gd.build(Kernel::Gather {
                table,
                ids: idv,
                rows,
                dim,
                n,
                out,
            });
            let ins = [
                f32s(data(rows * dim, 51, -1.0, 1.0)),
                HostData::U32(ids(n, rows, 52)),
            ];
            let what = format!("{path}: gather {rows}x{dim} n={n}");
            let (gv, cv) = guarded_run(&g, &what, &plan, &ins);
            check(&what, &gv[0], &cv[0], |_| 0.0);
        }

        // The logistic loss and its gradient.
        for n in [1, 129, 300] {
            for grad in [false, true] {
                let mut gd = Guarded::new();
                let x = gd.input(n);
                let t = gd.input(n);
                let gr = gd.input(1);
                let out = gd.output(if grad { n } else { 1 });
                let k = if grad {
                    Kernel::LogisticLossGrad {
                        logits: x,
                        targets: t,
                        grad: gr,
                        n,
                        out,
                    }
                } else {
                    Kernel::LogisticLoss {
                        logits: x,
                        targets: t,
                        n,
                        out,
                    }
                };
                let ins = [
                    f32s(data(n, 91, -20.0, 20.0)),
                    f32s(data(n, 92, 0.0, 1.0)),
                    f32s(vec![0.5]),
                ];
                let what = format!("{path}: logistic n={n} grad={grad}");
                let (gv, cv) = guarded_run(&g, &what, &gd.build(k), &ins);
                check(&what, &gv[0], &cv[0], rel(2e-5, 2e-6, &cv[0]));
            }
        }
    }
}
