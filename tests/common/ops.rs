//! The element-wise ops the gradient and equivalence tests iterate over,
//! with the inputs each takes. A new op in the tables (`src/ir/unary.rs`,
//! `src/ir/binary.rs`) needs one line here; `every_table_op_is_listed`
//! fails until it has one.

use deltagrad::ir::{BinaryOp, UnaryOp};

/// Where an op's test inputs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Values in (−1, 1), away from 0 and ties.
    Any,
    /// Values in [0.5, 1.5).
    Positive,
}

/// Every unary op and its input domain.
pub const UNARY: &[(UnaryOp, Domain)] = &[
    (UnaryOp::Neg, Domain::Any),
    (UnaryOp::Exp, Domain::Any),
    (UnaryOp::Log, Domain::Positive),
    (UnaryOp::Sqrt, Domain::Positive),
    (UnaryOp::Recip, Domain::Positive),
    (UnaryOp::Tanh, Domain::Any),
    (UnaryOp::Sigmoid, Domain::Any),
    (UnaryOp::Relu, Domain::Any),
    (UnaryOp::Softplus, Domain::Any),
    (UnaryOp::Abs, Domain::Any),
    (UnaryOp::Log1p, Domain::Any),
    (UnaryOp::Expm1, Domain::Any),
];

/// Every binary op and the domains of its two inputs.
pub const BINARY: &[(BinaryOp, Domain, Domain)] = &[
    (BinaryOp::Add, Domain::Any, Domain::Any),
    (BinaryOp::Sub, Domain::Any, Domain::Any),
    (BinaryOp::Mul, Domain::Any, Domain::Any),
    (BinaryOp::Div, Domain::Any, Domain::Positive),
    (BinaryOp::Max, Domain::Any, Domain::Any),
    (BinaryOp::Min, Domain::Any, Domain::Any),
    (BinaryOp::Pow, Domain::Positive, Domain::Any),
    (BinaryOp::Gt, Domain::Any, Domain::Any),
    (BinaryOp::Ge, Domain::Any, Domain::Any),
    (BinaryOp::Eq, Domain::Any, Domain::Any),
    (BinaryOp::Lt, Domain::Any, Domain::Any),
    (BinaryOp::Le, Domain::Any, Domain::Any),
];

/// Fails when an op of the tables has no line above.
pub fn assert_every_table_op_is_listed() {
    for op in UnaryOp::ALL {
        assert!(
            UNARY.iter().any(|(o, _)| o == op),
            "unary op {} has no line in tests/common/ops.rs",
            op.name()
        );
    }
    for op in BinaryOp::ALL {
        assert!(
            BINARY.iter().any(|(o, _, _)| o == op),
            "binary op {} has no line in tests/common/ops.rs",
            op.name()
        );
    }
}
