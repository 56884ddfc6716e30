//! Typed kernel ids: each names a shader module, an entry point, override
//! constants and the exact binding list, and is the key of the pipeline
//! cache.

use super::emit::{self, Access, Site};
use crate::error::Result;
use crate::schedule::plan::{BinaryOp, Expr, ReduceOp, UnaryOp};

/// The `.wgsl` files, by name (the file name without `.wgsl`).
const SOURCES: &[(&str, &str)] = &[
    (
        "elementwise",
        include_str!("../../../shaders/elementwise.wgsl"),
    ),
    ("expr_fns", include_str!("../../../shaders/expr_fns.wgsl")),
    ("gather", include_str!("../../../shaders/gather.wgsl")),
    ("logistic", include_str!("../../../shaders/logistic.wgsl")),
    ("matmul", include_str!("../../../shaders/matmul.wgsl")),
    ("reduce", include_str!("../../../shaders/reduce.wgsl")),
    ("scatter", include_str!("../../../shaders/scatter.wgsl")),
    ("softmax", include_str!("../../../shaders/softmax.wgsl")),
];

/// Every shader file as `(name, source)`, templates unfilled. Used by the
/// shader validation tests; `elementwise` and `matmul` are templates
/// (see [`emit`]), `expr_fns` holds their helper functions.
pub fn shader_sources() -> &'static [(&'static str, &'static str)] {
    SOURCES
}

fn source(name: &str) -> &'static str {
    SOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .unwrap_or("")
}

/// How a kernel binds a buffer; the binding number is the position in
/// [`KernelId::bindings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    ReadWrite,
    Uniform,
    Read,
}

/// Which pipeline a launch uses. Elementwise expressions and matmul
/// epilogues are part of the key, so each distinct fused expression gets
/// one pipeline, built once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KernelId {
    Elementwise {
        expr: Expr,
        access: Vec<Access>,
    },
    Matmul {
        trans_a: bool,
        trans_b: bool,
        /// A's contiguous dimension is a multiple of 4.
        vec_a: bool,
        vec_b: bool,
        epilogue: Option<(Expr, Vec<Access>)>,
    },
    /// `tree`: one workgroup per output (long reductions).
    Reduce {
        op: ReduceOp,
        tree: bool,
    },
    /// Mean of a vector into one element (mean losses' last step).
    MeanAll,
    Gather,
    ScatterAdd,
    IndexAdd,
    /// Per-row softmax cross entropy, before the mean.
    XentRows,
    XentGrad,
    LogSoftmax,
    LogisticLoss,
    LogisticGrad,
}

/// Elementwise templates read inputs through `view_offset`.
const EW_SITE: Site = Site {
    prefix: "in",
    linear: "i",
    offset_fn: "view_offset",
    offset_args: "i",
    first_binding: 2,
};

/// Matmul epilogues read inputs at (row, col) of [m, n].
const EPI_SITE: Site = Site {
    prefix: "e",
    linear: "row * P.dims.z + col",
    offset_fn: "epi_offset",
    offset_args: "row, col",
    first_binding: 4,
};

/// Most inputs an elementwise kernel or epilogue takes (the size of the
/// stride arrays in the templates' Params).
pub const MAX_EW_INPUTS: usize = 16;
/// Most epilogue inputs (matmul Params' `epi` array).
pub const MAX_EPI_INPUTS: usize = 16;
/// Highest rank of an elementwise shape.
pub const MAX_RANK: usize = 8;

impl KernelId {
    /// The shader file this kernel's module comes from.
    pub fn module_name(&self) -> &'static str {
        match self {
            KernelId::Elementwise { .. } => "elementwise",
            KernelId::Matmul { .. } => "matmul",
            KernelId::Reduce { .. } | KernelId::MeanAll => "reduce",
            KernelId::Gather => "gather",
            KernelId::ScatterAdd | KernelId::IndexAdd => "scatter",
            KernelId::XentRows | KernelId::XentGrad | KernelId::LogSoftmax => "softmax",
            KernelId::LogisticLoss | KernelId::LogisticGrad => "logistic",
        }
    }

    pub fn entry_point(&self) -> &'static str {
        match self {
            KernelId::Elementwise { .. } | KernelId::Matmul { .. } => "main",
            KernelId::Reduce { tree: false, .. } => "serial",
            KernelId::Reduce { tree: true, .. } => "tree",
            KernelId::MeanAll => "mean_all",
            KernelId::Gather => "gather",
            KernelId::ScatterAdd => "scatter_add",
            KernelId::IndexAdd => "index_add",
            KernelId::XentRows => "xent_rows",
            KernelId::XentGrad => "xent_grad",
            KernelId::LogSoftmax => "log_softmax",
            KernelId::LogisticLoss => "logistic_loss",
            KernelId::LogisticGrad => "logistic_grad",
        }
    }

    /// Pipeline-overridable constants.
    pub fn overrides(&self) -> Vec<(&'static str, f64)> {
        let b = |v: bool| if v { 1.0 } else { 0.0 };
        match self {
            KernelId::Matmul {
                trans_a,
                trans_b,
                vec_a,
                vec_b,
                ..
            } => vec![
                ("TRANS_A", b(*trans_a)),
                ("TRANS_B", b(*trans_b)),
                ("VEC_A", b(*vec_a)),
                ("VEC_B", b(*vec_b)),
            ],
            KernelId::Reduce { op, .. } => vec![("IS_MAX", b(*op == ReduceOp::Max))],
            _ => Vec::new(),
        }
    }

    /// The module's WGSL, with templates filled by the emitter.
    pub fn source(&self) -> Result<String> {
        let fns = source("expr_fns");
        match self {
            KernelId::Elementwise { expr, access } => emit::fill(
                source("elementwise"),
                fns,
                &emit::bindings(access, &EW_SITE),
                &emit::loads(access, &EW_SITE),
                &emit::expr(expr, access.len(), false)?,
            ),
            KernelId::Matmul { epilogue, .. } => {
                let (access, e): (&[Access], String) = match epilogue {
                    Some((expr, access)) => (access, emit::expr(expr, access.len(), true)?),
                    None => (&[], "acc".to_string()),
                };
                emit::fill(
                    source("matmul"),
                    fns,
                    &emit::bindings(access, &EPI_SITE),
                    &emit::loads(access, &EPI_SITE),
                    &e,
                )
            }
            other => Ok(source(other.module_name()).to_string()),
        }
    }

    /// The bindings, in binding-number order.
    pub fn bindings(&self) -> Vec<Binding> {
        use Binding::{Read, ReadWrite, Uniform};
        let own = |access: &[Access]| access.iter().filter(|a| **a != Access::InPlace).count();
        match self {
            KernelId::Elementwise { access, .. } => {
                let mut v = vec![ReadWrite, Uniform];
                v.extend(std::iter::repeat_n(Read, own(access)));
                v
            }
            KernelId::Matmul { epilogue, .. } => {
                let mut v = vec![ReadWrite, Uniform, Read, Read];
                if let Some((_, access)) = epilogue {
                    v.extend(std::iter::repeat_n(Read, own(access)));
                }
                v
            }
            KernelId::Reduce { .. } | KernelId::MeanAll | KernelId::LogSoftmax => {
                vec![ReadWrite, Uniform, Read]
            }
            KernelId::Gather
            | KernelId::ScatterAdd
            | KernelId::IndexAdd
            | KernelId::XentRows
            | KernelId::LogisticLoss => vec![ReadWrite, Uniform, Read, Read],
            KernelId::XentGrad | KernelId::LogisticGrad => {
                vec![ReadWrite, Uniform, Read, Read, Read]
            }
        }
    }

    /// One id of every variant (and both values of every flag), with
    /// representative expressions, for tests that compile them all.
    pub fn all_examples() -> Vec<KernelId> {
        let x = |i| Expr::Input(i);
        let fused = Expr::binary(
            BinaryOp::Max,
            Expr::binary(
                BinaryOp::Add,
                Expr::unary(UnaryOp::Tanh, x(0)),
                Expr::binary(BinaryOp::Mul, x(1), Expr::constant(f64::INFINITY)),
            ),
            Expr::binary(BinaryOp::Gt, Expr::unary(UnaryOp::Sigmoid, x(2)), x(3)),
        );
        let all_ops = Expr::binary(
            BinaryOp::Div,
            Expr::binary(
                BinaryOp::Sub,
                Expr::unary(
                    UnaryOp::Relu,
                    Expr::unary(UnaryOp::Log, Expr::unary(UnaryOp::Exp, x(0))),
                ),
                Expr::unary(UnaryOp::Sqrt, Expr::unary(UnaryOp::Neg, x(0))),
            ),
            Expr::binary(
                BinaryOp::Ge,
                Expr::unary(UnaryOp::Recip, x(0)),
                Expr::binary(BinaryOp::Eq, x(0), Expr::constant(-1.5e-3)),
            ),
        );
        let bias_relu = Expr::unary(UnaryOp::Relu, Expr::binary(BinaryOp::Add, Expr::Acc, x(0)));
        let mut v = vec![
            KernelId::Elementwise {
                expr: fused,
                access: vec![
                    Access::Contiguous,
                    Access::Broadcast,
                    Access::Strided,
                    Access::InPlace,
                ],
            },
            KernelId::Elementwise {
                expr: all_ops,
                access: vec![Access::Strided],
            },
            KernelId::Elementwise {
                expr: Expr::constant(0.0),
                access: vec![],
            },
        ];
        for bits in 0..16u32 {
            let f = |i: u32| bits & (1 << i) != 0;
            v.push(KernelId::Matmul {
                trans_a: f(0),
                trans_b: f(1),
                vec_a: f(2),
                vec_b: f(3),
                epilogue: (bits % 3 == 0).then(|| {
                    (
                        bias_relu.clone(),
                        vec![if f(0) {
                            Access::Broadcast
                        } else {
                            Access::InPlace
                        }],
                    )
                }),
            });
        }
        for op in [ReduceOp::Sum, ReduceOp::Max] {
            for tree in [false, true] {
                v.push(KernelId::Reduce { op, tree });
            }
        }
        v.extend([
            KernelId::MeanAll,
            KernelId::Gather,
            KernelId::ScatterAdd,
            KernelId::IndexAdd,
            KernelId::XentRows,
            KernelId::XentGrad,
            KernelId::LogSoftmax,
            KernelId::LogisticLoss,
            KernelId::LogisticGrad,
        ]);
        v
    }
}
