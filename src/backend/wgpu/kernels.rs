//! Typed kernel ids: each names a shader module, an entry point, override
//! constants and the exact binding list, and is the key of the pipeline
//! cache.

use super::emit::{self, Access, Site};
use super::variants::MatmulVariant;
use crate::error::Result;
use crate::ir::{BinaryOp, Expr, ReduceOp, UnaryOp};

/// The `.wgsl` files. A kernel id names its module by this type, so a
/// missing source cannot compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    /// `argmax.wgsl`: index of the largest or smallest value along an axis.
    ArgMax,
    /// `elementwise.wgsl`: the template of fused element-wise kernels.
    Elementwise,
    /// `expr_fns.wgsl`: helper functions the expressions call (`dg_pow`,
    /// `dg_log1p`, …); spliced into the templates, not a module itself.
    ExprFns,
    /// `gather.wgsl`: row gather.
    Gather,
    /// `logistic.wgsl`: binary cross-entropy with logits and its gradient.
    Logistic,
    /// `matmul.wgsl`: the tiled matmul template, with epilogue and split-K.
    Matmul,
    /// `pad.wgsl`: zero padding along one axis.
    Pad,
    /// `reduce.wgsl`: sum/max over an axis with epilogue, and `mean_all`.
    Reduce,
    /// `scatter.wgsl`: deterministic scatter-add and in-place index-add.
    Scatter,
    /// `softmax.wgsl`: row-wise cross-entropy, its gradient, log-softmax.
    Softmax,
    /// Not a module: the subgroup reductions spliced into `Reduce` and
    /// `Softmax` where the adapter offers subgroups.
    Subgroup,
}

impl Shader {
    /// Every shader file, in name order.
    pub const ALL: [Shader; 11] = [
        Shader::ArgMax,
        Shader::Elementwise,
        Shader::ExprFns,
        Shader::Gather,
        Shader::Logistic,
        Shader::Matmul,
        Shader::Pad,
        Shader::Reduce,
        Shader::Scatter,
        Shader::Softmax,
        Shader::Subgroup,
    ];

    /// The file name without `.wgsl`.
    pub fn name(self) -> &'static str {
        match self {
            Shader::ArgMax => "argmax",
            Shader::Elementwise => "elementwise",
            Shader::ExprFns => "expr_fns",
            Shader::Gather => "gather",
            Shader::Logistic => "logistic",
            Shader::Matmul => "matmul",
            Shader::Pad => "pad",
            Shader::Reduce => "reduce",
            Shader::Scatter => "scatter",
            Shader::Softmax => "softmax",
            Shader::Subgroup => "subgroup",
        }
    }

    /// The file's text, embedded at build time.
    pub fn source(self) -> &'static str {
        match self {
            Shader::ArgMax => include_str!("../../../shaders/argmax.wgsl"),
            Shader::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            Shader::ExprFns => include_str!("../../../shaders/expr_fns.wgsl"),
            Shader::Gather => include_str!("../../../shaders/gather.wgsl"),
            Shader::Logistic => include_str!("../../../shaders/logistic.wgsl"),
            Shader::Matmul => include_str!("../../../shaders/matmul.wgsl"),
            Shader::Pad => include_str!("../../../shaders/pad.wgsl"),
            Shader::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Shader::Scatter => include_str!("../../../shaders/scatter.wgsl"),
            Shader::Softmax => include_str!("../../../shaders/softmax.wgsl"),
            Shader::Subgroup => include_str!("../../../shaders/subgroup.wgsl"),
        }
    }
}

/// Every shader file as `(name, source)`, templates unfilled. Used by the
/// shader validation tests; `elementwise`, `matmul`, `reduce` and
/// `softmax` are templates (see [`emit`]), `expr_fns` holds their helper
/// functions and `subgroup` the subgroup reductions (valid only with
/// subgroup support).
pub fn shader_sources() -> Vec<(&'static str, &'static str)> {
    Shader::ALL.iter().map(|s| (s.name(), s.source())).collect()
}

/// How a kernel binds a buffer; the binding number is the position in
/// [`KernelId::bindings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// A `storage, read_write` buffer (binding 0 is always the output).
    ReadWrite,
    /// The kernel's uniform `Params` block.
    Uniform,
    /// A `storage, read` buffer.
    Read,
}

/// Which pipeline a launch uses. Elementwise expressions and matmul
/// epilogues are part of the key, so each distinct fused expression gets
/// one pipeline, built once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KernelId {
    /// A fused element-wise kernel computing `expr` over its inputs.
    Elementwise {
        /// The expression (`Expr::Input(j)` is input `j`).
        expr: Expr,
        /// How each input is read, one per `Expr::Input`.
        access: Vec<Access>,
    },
    /// A tiled matmul, optionally with an epilogue, or one split-K pass.
    Matmul {
        /// A is stored as `[k, m]`.
        trans_a: bool,
        /// B is stored as `[n, k]`.
        trans_b: bool,
        /// A's contiguous dimension is a multiple of 4.
        vec_a: bool,
        /// B's contiguous dimension is a multiple of 4.
        vec_b: bool,
        /// The tiling (its `split` is always 1 here: splits are a launch
        /// parameter).
        tile: MatmulVariant,
        /// Writes split-K partial products instead of the epilogue's result.
        partial: bool,
        /// The epilogue's expression in `acc` and its inputs, and how each
        /// input is read; `None`: store the product.
        epilogue: Option<(Expr, Vec<Access>)>,
    },
    /// Split-K's second pass: sums the partial products in order, applies
    /// the epilogue.
    SplitSum {
        /// As for `Matmul`.
        epilogue: Option<(Expr, Vec<Access>)>,
    },
    /// `tree`: one workgroup per output (long reductions). The epilogue
    /// reads views over [outer, inner].
    Reduce {
        /// Sum or max.
        op: ReduceOp,
        /// One workgroup per output (else one thread per output).
        tree: bool,
        /// Workgroup reductions use subgroup operations (tree only).
        subgroups: bool,
        /// The epilogue's expression and input reads; `None`: store the
        /// reduced value.
        epilogue: Option<(Expr, Vec<Access>)>,
    },
    /// Mean of a vector into one element (mean losses' last step).
    MeanAll {
        /// The workgroup reduction uses subgroup operations.
        subgroups: bool,
    },
    /// Row gather `out[i, :] = table[ids[i], :]`.
    Gather,
    /// Deterministic scatter-add of rows into a zeroed `[rows, dim]`
    /// output, through a host-built order of the ids.
    ScatterAdd,
    /// The in-place sparse update `target[ids[i], :] += scale · src[i, :]`;
    /// with `factor`, `scale` is multiplied by a one-element buffer.
    IndexAdd {
        /// Reads the factor buffer (binding 4).
        factor: bool,
    },
    /// Row-wise softmax kernels: a workgroup per row, or a thread per row
    /// (`serial`, for narrow rows).
    Softmax {
        /// Which entry point.
        kind: SoftmaxKind,
        /// One thread per row (narrow rows) instead of a workgroup per row.
        serial: bool,
        /// The per-row reductions use subgroup operations (not serial).
        subgroups: bool,
    },
    /// Mean binary cross-entropy with logits, into one element.
    LogisticLoss,
    /// Its gradient `(σ(x) − t) · grad / n`.
    LogisticGrad,
    /// Zero padding along one axis.
    Pad,
    /// Index of the first largest (`min`: smallest) value along an axis.
    ArgMax {
        /// Argmin instead of argmax.
        min: bool,
    },
}

/// The entry points of `softmax.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SoftmaxKind {
    /// Per-row cross-entropy loss, before the mean.
    XentRows,
    /// The gradient `(softmax − onehot) · grad / rows` of the mean loss.
    XentGrad,
    /// The gradient and the per-row losses in one pass.
    XentBoth,
    /// Row-wise log-softmax.
    LogSoftmax,
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

/// Reduction epilogues read inputs at (row, col) of [outer, inner].
const REDUCE_EPI_SITE: Site = Site {
    prefix: "e",
    linear: "row * P.inner + col",
    offset_fn: "epi_offset",
    offset_args: "row, col",
    first_binding: 3,
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
    pub fn module(&self) -> Shader {
        match self {
            KernelId::Elementwise { .. } => Shader::Elementwise,
            KernelId::Matmul { .. } | KernelId::SplitSum { .. } => Shader::Matmul,
            KernelId::Reduce { .. } | KernelId::MeanAll { .. } => Shader::Reduce,
            KernelId::Gather => Shader::Gather,
            KernelId::ScatterAdd | KernelId::IndexAdd { .. } => Shader::Scatter,
            KernelId::Softmax { .. } => Shader::Softmax,
            KernelId::LogisticLoss | KernelId::LogisticGrad => Shader::Logistic,
            KernelId::Pad => Shader::Pad,
            KernelId::ArgMax { .. } => Shader::ArgMax,
        }
    }

    /// The module's file name, for labels and messages.
    pub fn module_name(&self) -> &'static str {
        self.module().name()
    }

    /// The WGSL entry point's name in the module.
    pub fn entry_point(&self) -> &'static str {
        match self {
            KernelId::Elementwise { .. } | KernelId::Matmul { .. } => "main",
            KernelId::SplitSum { .. } => "reduce_splits",
            KernelId::Reduce { tree: false, .. } => "serial",
            KernelId::Reduce { tree: true, .. } => "tree",
            KernelId::MeanAll { .. } => "mean_all",
            KernelId::Gather => "gather",
            KernelId::ScatterAdd => "scatter_add",
            KernelId::IndexAdd { factor: false } => "index_add",
            KernelId::IndexAdd { factor: true } => "index_add_factor",
            KernelId::Softmax { kind, serial, .. } => match (kind, serial) {
                (SoftmaxKind::XentRows, false) => "xent_rows",
                (SoftmaxKind::XentGrad, false) => "xent_grad",
                (SoftmaxKind::XentBoth, false) => "xent_both",
                (SoftmaxKind::LogSoftmax, false) => "log_softmax",
                (SoftmaxKind::XentRows, true) => "xent_rows_serial",
                (SoftmaxKind::XentGrad, true) => "xent_grad_serial",
                (SoftmaxKind::XentBoth, true) => "xent_both_serial",
                (SoftmaxKind::LogSoftmax, true) => "log_softmax_serial",
            },
            KernelId::LogisticLoss => "logistic_loss",
            KernelId::LogisticGrad => "logistic_grad",
            KernelId::Pad => "pad",
            KernelId::ArgMax { .. } => "argmax",
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
                partial,
                ..
            } => vec![
                ("TRANS_A", b(*trans_a)),
                ("TRANS_B", b(*trans_b)),
                ("VEC_A", b(*vec_a)),
                ("VEC_B", b(*vec_b)),
                ("PARTIAL", b(*partial)),
            ],
            KernelId::Reduce { op, .. } => vec![("IS_MAX", b(*op == ReduceOp::Max))],
            KernelId::ArgMax { min } => vec![("IS_MIN", b(*min))],
            _ => Vec::new(),
        }
    }

    /// Whether the module uses subgroup operations (the device must have
    /// been created with `Features::SUBGROUP`).
    pub fn uses_subgroups(&self) -> bool {
        match self {
            KernelId::Reduce {
                subgroups, tree, ..
            } => *subgroups && *tree,
            KernelId::MeanAll { subgroups } => *subgroups,
            KernelId::Softmax {
                subgroups, serial, ..
            } => *subgroups && !*serial,
            _ => false,
        }
    }

    /// Whether every index the kernel uses is bounded by the sizes the
    /// backend checks against the slots before any launch (the element
    /// counts, shapes and views in its parameters), so that its module may
    /// be created without runtime bounds checks (a "trusted" module).
    /// Scatter-add and index-add index through host-built tables read from
    /// a buffer, so they keep the checks.
    pub fn trusted(&self) -> bool {
        !matches!(self, KernelId::ScatterAdd | KernelId::IndexAdd { .. })
    }

    /// The module's WGSL, with templates filled by the emitter.
    pub fn source(&self) -> Result<String> {
        let fns = format!("{}\n{}", Shader::ExprFns.source(), emit::op_functions());
        let fns = fns.as_str();
        let epilogue = |e: &Option<(Expr, Vec<Access>)>, site: &Site, template: &str| {
            let (access, text): (&[Access], String) = match e {
                Some((expr, access)) => (access, emit::expr(expr, access.len(), true)?),
                None => (&[], "acc".to_string()),
            };
            emit::fill(
                template,
                fns,
                &emit::bindings(access, site),
                &emit::loads(access, site),
                &text,
            )
        };
        match self {
            KernelId::Elementwise { expr, access } => emit::fill(
                Shader::Elementwise.source(),
                fns,
                &emit::bindings(access, &EW_SITE),
                &emit::loads(access, &EW_SITE),
                &emit::expr(expr, access.len(), false)?,
            ),
            KernelId::Matmul {
                epilogue: e, tile, ..
            } => {
                let template = emit::tiling(Shader::Matmul.source(), &tile.wgsl_constants())?;
                epilogue(e, &EPI_SITE, &template)
            }
            KernelId::SplitSum { epilogue: e } => epilogue(e, &EPI_SITE, Shader::Matmul.source()),
            KernelId::Reduce { epilogue: e, .. } => {
                let src = epilogue(e, &REDUCE_EPI_SITE, Shader::Reduce.source())?;
                emit::reductions(&src, self.uses_subgroups(), Shader::Subgroup.source())
            }
            KernelId::MeanAll { .. } => {
                let src = epilogue(&None, &REDUCE_EPI_SITE, Shader::Reduce.source())?;
                emit::reductions(&src, self.uses_subgroups(), Shader::Subgroup.source())
            }
            KernelId::Softmax { .. } => emit::reductions(
                Shader::Softmax.source(),
                self.uses_subgroups(),
                Shader::Subgroup.source(),
            ),
            other => Ok(other.module().source().to_string()),
        }
    }

    /// The bindings, in binding-number order.
    pub fn bindings(&self) -> Vec<Binding> {
        use Binding::{Read, ReadWrite, Uniform};
        let own = |access: &[Access]| access.iter().filter(|a| **a != Access::InPlace).count();
        let with_epilogue = |mut v: Vec<Binding>, e: &Option<(Expr, Vec<Access>)>| {
            if let Some((_, access)) = e {
                v.extend(std::iter::repeat_n(Read, own(access)));
            }
            v
        };
        match self {
            KernelId::Elementwise { access, .. } => {
                let mut v = vec![ReadWrite, Uniform];
                v.extend(std::iter::repeat_n(Read, own(access)));
                v
            }
            KernelId::Matmul { epilogue, .. } | KernelId::SplitSum { epilogue } => {
                with_epilogue(vec![ReadWrite, Uniform, Read, Read], epilogue)
            }
            KernelId::Reduce { epilogue, .. } => {
                with_epilogue(vec![ReadWrite, Uniform, Read], epilogue)
            }
            KernelId::Pad | KernelId::ArgMax { .. } => vec![ReadWrite, Uniform, Read],
            KernelId::MeanAll { .. } => vec![ReadWrite, Uniform, Read],
            KernelId::Softmax { kind, .. } => match kind {
                SoftmaxKind::LogSoftmax => vec![ReadWrite, Uniform, Read],
                SoftmaxKind::XentRows => vec![ReadWrite, Uniform, Read, Read],
                SoftmaxKind::XentGrad => vec![ReadWrite, Uniform, Read, Read, Read],
                SoftmaxKind::XentBoth => vec![ReadWrite, Uniform, Read, Read, Read, ReadWrite],
            },
            KernelId::Gather
            | KernelId::ScatterAdd
            | KernelId::IndexAdd { factor: false }
            | KernelId::LogisticLoss => vec![ReadWrite, Uniform, Read, Read],
            KernelId::IndexAdd { factor: true } => vec![ReadWrite, Uniform, Read, Read, Read],
            KernelId::LogisticGrad => vec![ReadWrite, Uniform, Read, Read, Read],
        }
    }

    /// One id of every variant (and both values of every flag), with
    /// expressions that use every table op, for tests that compile them all.
    pub fn all_examples() -> Vec<KernelId> {
        let (fused, all_ops) = example_exprs();
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
        v.extend(matmul_examples());
        v.extend(reduction_examples());
        v.extend([
            KernelId::Gather,
            KernelId::ScatterAdd,
            KernelId::IndexAdd { factor: false },
            KernelId::IndexAdd { factor: true },
            KernelId::LogisticLoss,
            KernelId::LogisticGrad,
            KernelId::Pad,
            KernelId::ArgMax { min: false },
            KernelId::ArgMax { min: true },
        ]);
        v
    }
}

/// Matmuls with every flag both ways, every tiling, partial (split-K)
/// passes and their sums, with and without a bias + ReLU epilogue.
fn matmul_examples() -> Vec<KernelId> {
    let bias_relu = Expr::unary(
        UnaryOp::Relu,
        Expr::binary(BinaryOp::Add, Expr::Acc, Expr::Input(0)),
    );
    let tiles = MatmulVariant::TILINGS;
    let mut v = Vec::new();
    for bits in 0..32u32 {
        let f = |i: u32| bits & (1 << i) != 0;
        let epilogue = (bits % 3 == 0).then(|| {
            let access = if f(0) {
                Access::Broadcast
            } else {
                Access::InPlace
            };
            (bias_relu.clone(), vec![access])
        });
        v.push(KernelId::Matmul {
            trans_a: f(0),
            trans_b: f(1),
            vec_a: f(2),
            vec_b: f(3),
            tile: tiles[bits as usize % tiles.len()],
            partial: f(4),
            epilogue: if f(4) { None } else { epilogue.clone() },
        });
        if bits < 2 {
            v.push(KernelId::SplitSum { epilogue });
        }
    }
    v
}

/// Reductions (serial and tree, with and without subgroups, one with an
/// SGD epilogue), the loss mean and every softmax kernel.
fn reduction_examples() -> Vec<KernelId> {
    let mut v = Vec::new();
    for op in [ReduceOp::Sum, ReduceOp::Max] {
        for tree in [false, true] {
            for subgroups in [false, true] {
                v.push(KernelId::Reduce {
                    op,
                    tree,
                    subgroups,
                    epilogue: (op == ReduceOp::Sum && tree).then(|| {
                        let sgd = Expr::binary(
                            BinaryOp::Sub,
                            Expr::Input(0),
                            Expr::binary(BinaryOp::Mul, Expr::constant(0.1), Expr::Acc),
                        );
                        (sgd, vec![Access::Contiguous])
                    }),
                });
            }
        }
    }
    for subgroups in [false, true] {
        v.push(KernelId::MeanAll { subgroups });
        for kind in [
            SoftmaxKind::XentRows,
            SoftmaxKind::XentGrad,
            SoftmaxKind::XentBoth,
            SoftmaxKind::LogSoftmax,
        ] {
            for serial in [false, true] {
                v.push(KernelId::Softmax {
                    kind,
                    serial,
                    subgroups,
                });
            }
        }
    }
    v
}

/// A four-input expression with constants (infinite ones too) and a
/// select, and one that applies every unary and binary table op.
fn example_exprs() -> (Expr, Expr) {
    let x = Expr::Input;
    let fused = Expr::select(
        x(3),
        (x(0).tanh() + x(1) * f64::INFINITY).maximum(x(2).sigmoid().gt(x(3))),
        Expr::constant(-1.5e-3),
    );
    let mut all_ops = x(0);
    for op in UnaryOp::ALL {
        all_ops = Expr::unary(*op, all_ops);
    }
    for op in BinaryOp::ALL {
        all_ops = Expr::binary(*op, all_ops, x(0));
    }
    (fused, all_ops)
}
