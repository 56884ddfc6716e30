//! The op vocabulary and the plan IR, at the bottom of the engine: the
//! graph's primitive ops, the element-wise op tables (scalar function, WGSL,
//! derivative side by side), the scalar expressions fused kernels compute,
//! the `Plan` a backend executes, and the `CustomOp` trait. Every layer above
//! imports this one; it imports nothing above `dtype` and `error`.

pub mod binary;
pub mod custom;
pub mod expr;
pub mod float;
pub mod op;
pub mod plan;
pub mod unary;
pub mod zip;

pub use custom::CustomOp;
pub use expr::{BinaryOp, Df, Expr, Grad, UnaryOp};
pub use float::Float;
pub use op::Op;
pub use plan::{Epilogue, Kernel, Launch, Plan, ReduceOp, Slot, SlotId, SlotKind, View};
pub use zip::Side;

pub(crate) use binary::binary_ops;
pub(crate) use unary::unary_ops;
