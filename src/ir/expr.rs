//! Scalar expressions: what a fused element-wise kernel computes per output
//! element, and the language op tables write derivatives in.

use std::fmt;
use std::ops::{Add, Div, Mul, Neg, Sub};

use super::binary::{binary_ops, define_binary};
use super::float::{Float, binary_fn, flag, max_nan, min_nan, sigmoid, unary_fn};
use super::unary::{define_unary, unary_ops};
use super::zip::{Side, zip_with};

/// What a unary op's derivative is computed from.
#[derive(Clone, Copy)]
pub enum Df {
    /// f'(x) as an expression of the saved output y = f(x).
    Output(fn(&Expr) -> Expr),
    /// f'(x) as an expression of the input x.
    Input(fn(&Expr) -> Expr),
}

/// The gradient rule of a binary op.
#[derive(Clone, Copy)]
pub enum Grad {
    /// ∂/∂a and ∂/∂b as expressions of (g, a, b, y).
    Rule(
        fn(&Expr, &Expr, &Expr, &Expr) -> Expr,
        fn(&Expr, &Expr, &Expr, &Expr) -> Expr,
    ),
    /// A 0/1 mask or other piecewise-constant result: no gradient.
    None,
}

// The op enums and their methods, generated from the tables in `unary.rs`
// and `binary.rs`.
unary_ops!(define_unary);
binary_ops!(define_binary);

/// A scalar expression evaluated once per output element.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// The kernel's `i`-th input view.
    Input(usize),
    /// A constant, stored as the bits of an f64 so that `Expr` hashes.
    Const(u64),
    /// The matmul accumulator (only inside a matmul epilogue).
    Acc,
    /// A unary op applied to an expression.
    Unary(UnaryOp, Box<Expr>),
    /// A binary op applied to two expressions (left, right).
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `if cond != 0 { a } else { b }`; the branch not taken is never
    /// propagated (a NaN there does not leak, unlike `c·a + (1 − c)·b`).
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
}

impl Expr {
    /// The constant `v` (kept bit for bit: `-0.0` and NaN payloads too).
    pub fn constant(v: f64) -> Expr {
        Expr::Const(v.to_bits())
    }
    /// `op(a)`.
    pub fn unary(op: UnaryOp, a: Expr) -> Expr {
        Expr::Unary(op, Box::new(a))
    }
    /// `op(a, b)`.
    pub fn binary(op: BinaryOp, a: Expr, b: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(b))
    }
    /// `if cond != 0 { a } else { b }` (see [`Expr::Select`]).
    pub fn select(cond: Expr, a: Expr, b: Expr) -> Expr {
        Expr::Select(Box::new(cond), Box::new(a), Box::new(b))
    }

    /// The constant's value, if this is one.
    pub fn as_const(&self) -> Option<f64> {
        match self {
            Expr::Const(b) => Some(f64::from_bits(*b)),
            _ => None,
        }
    }

    /// The same expression with input `i` renamed to `f(i)`.
    pub fn map_inputs(self, f: &impl Fn(usize) -> usize) -> Expr {
        match self {
            Expr::Input(i) => Expr::Input(f(i)),
            Expr::Unary(op, a) => Expr::unary(op, a.map_inputs(f)),
            Expr::Binary(op, a, b) => Expr::binary(op, a.map_inputs(f), b.map_inputs(f)),
            Expr::Select(c, a, b) => {
                Expr::select(c.map_inputs(f), a.map_inputs(f), b.map_inputs(f))
            }
            other => other,
        }
    }

    /// Number of operator nodes (for FLOP estimates).
    pub fn op_count(&self) -> usize {
        match self {
            Expr::Input(_) | Expr::Const(_) | Expr::Acc => 0,
            Expr::Unary(_, a) => 1 + a.op_count(),
            Expr::Binary(_, a, b) => 1 + a.op_count() + b.op_count(),
            Expr::Select(c, a, b) => 1 + c.op_count() + a.op_count() + b.op_count(),
        }
    }

    /// Every input index the expression reads, with repeats.
    pub fn inputs(&self, out: &mut Vec<usize>) {
        match self {
            Expr::Input(i) => out.push(*i),
            Expr::Const(_) | Expr::Acc => {}
            Expr::Unary(_, a) => a.inputs(out),
            Expr::Binary(_, a, b) => {
                a.inputs(out);
                b.inputs(out);
            }
            Expr::Select(c, a, b) => {
                c.inputs(out);
                a.inputs(out);
                b.inputs(out);
            }
        }
    }
}

impl From<&Expr> for Expr {
    fn from(e: &Expr) -> Expr {
        e.clone()
    }
}

impl From<f64> for Expr {
    fn from(v: f64) -> Expr {
        Expr::constant(v)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Input(i) => write!(f, "in{i}"),
            Expr::Const(b) => write!(f, "{}", f64::from_bits(*b)),
            Expr::Acc => write!(f, "acc"),
            Expr::Unary(op, a) => write!(f, "{}({a})", op.name()),
            Expr::Binary(op, a, b) => write!(f, "{}({a}, {b})", op.name()),
            Expr::Select(c, a, b) => write!(f, "where({c}, {a}, {b})"),
        }
    }
}

// Arithmetic on expressions, so that derivative rules in the op tables
// read as formulas (`1.0 - y * y`). Every combination of owned, borrowed
// and f64 operands.
macro_rules! arith {
    ($trait:ident, $method:ident, $op:ident) => {
        impl $trait<Expr> for Expr {
            type Output = Expr;
            fn $method(self, rhs: Expr) -> Expr {
                Expr::binary(BinaryOp::$op, self, rhs)
            }
        }
        impl $trait<&Expr> for Expr {
            type Output = Expr;
            fn $method(self, rhs: &Expr) -> Expr {
                Expr::binary(BinaryOp::$op, self, rhs.clone())
            }
        }
        impl $trait<Expr> for &Expr {
            type Output = Expr;
            fn $method(self, rhs: Expr) -> Expr {
                Expr::binary(BinaryOp::$op, self.clone(), rhs)
            }
        }
        impl $trait<&Expr> for &Expr {
            type Output = Expr;
            fn $method(self, rhs: &Expr) -> Expr {
                Expr::binary(BinaryOp::$op, self.clone(), rhs.clone())
            }
        }
        impl $trait<f64> for Expr {
            type Output = Expr;
            fn $method(self, rhs: f64) -> Expr {
                Expr::binary(BinaryOp::$op, self, Expr::constant(rhs))
            }
        }
        impl $trait<f64> for &Expr {
            type Output = Expr;
            fn $method(self, rhs: f64) -> Expr {
                Expr::binary(BinaryOp::$op, self.clone(), Expr::constant(rhs))
            }
        }
        impl $trait<Expr> for f64 {
            type Output = Expr;
            fn $method(self, rhs: Expr) -> Expr {
                Expr::binary(BinaryOp::$op, Expr::constant(self), rhs)
            }
        }
        impl $trait<&Expr> for f64 {
            type Output = Expr;
            fn $method(self, rhs: &Expr) -> Expr {
                Expr::binary(BinaryOp::$op, Expr::constant(self), rhs.clone())
            }
        }
    };
}

arith!(Add, add, Add);
arith!(Sub, sub, Sub);
arith!(Mul, mul, Mul);
arith!(Div, div, Div);

impl Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::unary(UnaryOp::Neg, self)
    }
}

impl Neg for &Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::unary(UnaryOp::Neg, self.clone())
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod wide_loops {
    // Here rather than in `zip`, which the ops' loops import: a test there
    // naming the ops would tie the two modules in a circle.
    use super::super::zip::{Side, wide, widest};
    use super::{BinaryOp, Float, UnaryOp};

    /// Values that take every branch of the ops: signed zeros, both
    /// infinities, NaN, tiny, huge, and an ordinary spread.
    fn values<T: Float>() -> Vec<T> {
        let mut v: Vec<f64> = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        v.extend([1e-30, -3e-4, 5e-4, 7.9, -8.0, 40.0, -90.0, 1e30, 0.5, 2.0]);
        v.extend((0..1000).map(|i| ((i * 7919) % 2001) as f64 / 100.0 - 10.0));
        v.into_iter().map(T::from_f64).collect()
    }

    fn bits<T: Float>(v: &[T]) -> Vec<u64> {
        v.iter().map(|x| x.to_f64().to_bits()).collect()
    }

    /// Each wide copy (AVX2, and AVX-512 where the CPU has it) against
    /// the plain loop, bit for bit.
    fn check<T: Float>() {
        if !wide() {
            return;
        }
        let widest = widest();
        let x = values::<T>();
        let y: Vec<T> = x.iter().rev().copied().collect();
        for &op in UnaryOp::ALL {
            let mut narrow = x.clone();
            op.map_here(&mut narrow);
            let mut a = vec![T::ZERO; x.len()];
            op.map_into_here(&mut a, &x);
            for copy in 0..if widest { 2 } else { 1 } {
                let mut wide_ = x.clone();
                let mut b = vec![T::ZERO; x.len()];
                // SAFETY: `wide()` said the CPU has AVX2, `widest()`
                // AVX-512 (copy 1 runs only then).
                unsafe {
                    if copy == 0 {
                        op.map_avx2(&mut wide_);
                        op.map_into_avx2(&mut b, &x);
                    } else {
                        op.map_avx512(&mut wide_);
                        op.map_into_avx512(&mut b, &x);
                    }
                }
                assert_eq!(bits(&narrow), bits(&wide_), "{op:?} map, copy {copy}");
                assert_eq!(bits(&a), bits(&b), "{op:?} map_into, copy {copy}");
            }
        }
        for &op in BinaryOp::ALL {
            let sides = [
                Side::Slice(&y[..]),
                Side::Scalar(T::from_f64(0.75)),
                Side::Out,
            ];
            for a in [Side::Slice(&x[..]), Side::Out] {
                for b in sides {
                    let mut narrow = y.clone();
                    op.zip_with_here(&mut narrow, a, b);
                    for copy in 0..if widest { 2 } else { 1 } {
                        let mut wide_ = y.clone();
                        // SAFETY: as above.
                        unsafe {
                            if copy == 0 {
                                op.zip_with_avx2(&mut wide_, a, b);
                            } else {
                                op.zip_with_avx512(&mut wide_, a, b);
                            }
                        }
                        assert_eq!(
                            bits(&narrow),
                            bits(&wide_),
                            "{op:?} {a:?} {b:?}, copy {copy}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn wide_and_narrow_loops_agree() {
        check::<f32>();
        check::<f64>();
    }
}
