//! Binary element-wise ops with NumPy broadcasting, one table entry each:
//! the name (also the `Tensor` method), the scalar function for f32 and
//! f64, the WGSL expression in `a` and `b`, and the gradient with respect to
//! each input as an expression of the upstream gradient `g`, the inputs `a`
//! and `b` and the output `y` (the ops layer sums each back to its input's
//! shape). `+` distributes, `*` switches, `max` routes. A rule may use
//! `Expr::select` where a formula alone would give NaN (pow at a = 0).
//!
//! Adding an op: one entry here, plus one line in the test op list
//! (`tests/common/ops.rs`).

/// The table (see `unary_ops!` for how it is used). Entry grammar:
/// `/// docs` `Variant method { f: |a, b| …, wgsl: "…", grad: Rule(da, db) | None }`.
macro_rules! binary_ops {
    ($cb:path) => {
        $cb! {
            /// Element-wise sum. Gradient: g to both inputs.
            Add add {
                f: |a, b| a + b,
                wgsl: "a + b",
                grad: Rule(|g, _, _, _| g.clone(), |g, _, _, _| g.clone()),
            }
            /// Element-wise difference. Gradient: g and −g.
            Sub sub {
                f: |a, b| a - b,
                wgsl: "a - b",
                grad: Rule(|g, _, _, _| g.clone(), |g, _, _, _| -g),
            }
            /// The Hadamard (element-wise) product. Gradient: g ⊙ b and g ⊙ a.
            Mul mul {
                f: |a, b| a * b,
                wgsl: "a * b",
                grad: Rule(|g, _, b, _| g * b, |g, a, _, _| g * a),
            }
            /// Element-wise quotient. Gradient: g / b and −g ⊙ a / b².
            Div div {
                f: |a, b| a / b,
                wgsl: "a / b",
                grad: Rule(|g, _, b, _| g / b, |g, a, b, _| -(g * a / (b * b))),
            }
            /// Element-wise maximum (NaN in either gives NaN). Gradient: g
            /// goes to the larger input (ties: the first).
            Max maximum {
                f: max_nan,
                wgsl: "select(b, a, dg_isnan(a) || a >= b)",
                grad: Rule(|g, a, b, _| g * a.ge(b), |g, a, b, _| g * (1.0 - a.ge(b))),
            }
            /// Element-wise minimum (NaN in either gives NaN). Gradient: g
            /// goes to the smaller input (ties: the first).
            Min minimum {
                f: min_nan,
                wgsl: "select(b, a, dg_isnan(a) || a <= b)",
                grad: Rule(|g, a, b, _| g * a.le(b), |g, a, b, _| g * (1.0 - a.le(b))),
            }
            /// The power aᵇ, with the CPU's `powf` semantics on every backend:
            /// a negative base needs an integer exponent (else NaN), 0⁰ = 1,
            /// 0 to a negative power is ∞. Gradient: g ⊙ b·aᵇ⁻¹ (0 where
            /// b = 0) and g ⊙ aᵇ·ln a (0 where a = 0 and b ≥ 0), as in PyTorch.
            Pow pow {
                f: |a, b| a.powf(b),
                // WGSL's pow is undefined for a < 0 and for 0⁰; see `dg_pow`
                // in shaders/expr_fns.wgsl.
                wgsl: "dg_pow(a, b)",
                grad: Rule(
                    |g, a, b, _| g * Expr::select(b.eq_mask(0.0), 0.0.into(), b * a.pow(b - 1.0)),
                    |g, a, b, y| {
                        let zero_base = a.eq_mask(0.0) * b.ge(0.0);
                        g * Expr::select(zero_base, 0.0.into(), y * a.log())
                    }
                ),
            }
            /// 1 where a > b, else 0. No gradient.
            Gt gt {
                f: |a, b| flag(a > b),
                wgsl: "select(0.0, 1.0, a > b)",
                grad: None,
            }
            /// 1 where a ≥ b, else 0. No gradient.
            Ge ge {
                f: |a, b| flag(a >= b),
                wgsl: "select(0.0, 1.0, a >= b)",
                grad: None,
            }
            /// 1 where a < b, else 0. No gradient.
            Lt lt {
                f: |a, b| flag(a < b),
                wgsl: "select(0.0, 1.0, a < b)",
                grad: None,
            }
            /// 1 where a ≤ b, else 0. No gradient.
            Le le {
                f: |a, b| flag(a <= b),
                wgsl: "select(0.0, 1.0, a <= b)",
                grad: None,
            }
            /// 1 where a = b, else 0. No gradient.
            Eq eq_mask {
                f: |a, b| flag(a == b),
                wgsl: "select(0.0, 1.0, a == b)",
                grad: None,
            }
        }
    };
}
pub(crate) use binary_ops;

/// Generates `BinaryOp` and the `Expr` builder methods from the table;
/// expanded in `expr.rs` (see `define_unary`).
macro_rules! define_binary {
    ($( $(#[doc = $doc:literal])* $variant:ident $method:ident {
        f: $f:expr, wgsl: $wgsl:literal, grad: $grad:ident $(($da:expr, $db:expr))? $(,)?
    } )*) => {
        /// A binary element-wise op (see the table in this module).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum BinaryOp {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl BinaryOp {
            /// Every binary op, in table order.
            pub const ALL: &'static [BinaryOp] = &[$(BinaryOp::$variant),*];

            /// The op's name (also its `Tensor` method).
            pub fn name(self) -> &'static str {
                match self { $(BinaryOp::$variant => stringify!($method),)* }
            }

            /// The WGSL expression, an f32 expression in `a` and `b`.
            pub fn wgsl(self) -> &'static str {
                match self { $(BinaryOp::$variant => $wgsl,)* }
            }

            /// The gradient rule.
            pub fn grad(self) -> Grad {
                match self { $(BinaryOp::$variant => Grad::$grad $(($da, $db))?,)* }
            }

            /// `f(a, b)`.
            #[inline]
            pub fn apply<T: Float>(self, a: T, b: T) -> T {
                match self { $(BinaryOp::$variant => binary_fn::<T, _>($f)(a, b),)* }
            }

            /// `out[i] = f(a[i], b[i])` with each operand where it is (the
            /// output itself, a slice, or one value), one loop per op,
            /// compiled for AVX-512 or AVX2 where the CPU has it
            /// (`zip::widest`, `zip::wide`).
            pub fn zip_with<T: Float>(self, out: &mut [T], a: Side<'_, T>, b: Side<'_, T>) {
                #[cfg(target_arch = "x86_64")]
                if super::zip::widest() {
                    // SAFETY: the CPU has AVX-512.
                    return unsafe { self.zip_with_avx512(out, a, b) };
                }
                #[cfg(target_arch = "x86_64")]
                if super::zip::wide() {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { self.zip_with_avx2(out, a, b) };
                }
                self.zip_with_here(out, a, b)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            pub(crate) unsafe fn zip_with_avx2<T: Float>(self, out: &mut [T], a: Side<'_, T>, b: Side<'_, T>) {
                self.zip_with_here(out, a, b)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            pub(crate) unsafe fn zip_with_avx512<T: Float>(self, out: &mut [T], a: Side<'_, T>, b: Side<'_, T>) {
                self.zip_with_here(out, a, b)
            }

            #[inline(always)]
            pub(crate) fn zip_with_here<T: Float>(self, out: &mut [T], a: Side<'_, T>, b: Side<'_, T>) {
                match self {
                    $(BinaryOp::$variant => zip_with(out, a, b, binary_fn::<T, _>($f)),)*
                }
            }
        }

        impl Expr {
            $(
                $(#[doc = $doc])*
                pub fn $method(&self, other: impl Into<Expr>) -> Expr {
                    Expr::binary(BinaryOp::$variant, self.clone(), other.into())
                }
            )*
        }
    };
}

pub(crate) use define_binary;
