//! Unary element-wise ops, one table entry each: the name (also the
//! `Tensor` method), the scalar function `f` for f32 and f64, the WGSL
//! expression, and the derivative `df` as an expression of the saved value
//! it reads — the output (tanh, logistic: cheaper, and the output is kept
//! for the next layer anyway) or the input (ReLU), as in dfdx. The backward
//! pass is the Hadamard product g ⊙ f'(·), built by the ops layer from
//! `df`, so every rule is itself differentiable.
//!
//! Adding an op: one entry here, plus one line in the op list the gradient
//! and equivalence tests iterate over (`tests/common/ops.rs`). The
//! `Tensor` method, the CPU loop, the WGSL helper and the backward rule all
//! come from the entry.

/// The table, handed to a macro `$cb` that generates something from it (the
/// op enum here; `Tensor` methods in the ops layer). Entry grammar:
/// `/// docs` `Variant method { f: |x| …, wgsl: "…", df: Output|Input(|s| …) }`.
/// `f` gets `x: T` for `T: Float`; `wgsl` is an f32 expression in `x`.
macro_rules! unary_ops {
    ($cb:path) => {
        $cb! {
            /// Negation −x. Gradient: −g.
            Neg neg {
                f: |x| -x,
                wgsl: "-x",
                df: Input(|_x| Expr::constant(-1.0)),
            }
            /// The exponential eˣ. Gradient: g ⊙ eˣ (reuses the output).
            Exp exp {
                f: |x| x.exp(),
                wgsl: "exp(x)",
                df: Output(|y| y.clone()),
            }
            /// The natural logarithm. Gradient: g ⊙ 1/x.
            Log log {
                f: |x| x.ln(),
                wgsl: "log(x)",
                df: Input(|x| 1.0 / x),
            }
            /// The square root. Gradient: g ⊙ 1/(2√x) (from the output).
            Sqrt sqrt {
                f: |x| x.sqrt(),
                wgsl: "sqrt(x)",
                df: Output(|y| 0.5 / y),
            }
            /// The reciprocal 1/x. Gradient: g ⊙ −1/x² = g ⊙ −y².
            Recip recip {
                f: |x| T::ONE / x,
                wgsl: "1.0 / x",
                df: Output(|y| -(y * y)),
            }
            /// The hyperbolic tangent. Gradient: g ⊙ (1 − tanh²(x)), from the
            /// output.
            Tanh tanh {
                f: |x| x.tanh(),
                // Some drivers compute tanh via exp(2x) and return NaN for
                // large |x|; tanh(10) is 1 in f32.
                wgsl: "select(tanh(x), sign(x), abs(x) > 10.0)",
                df: Output(|y| 1.0 - y * y),
            }
            /// The logistic function σ(x) = 1/(1 + e⁻ˣ). Gradient:
            /// g ⊙ σ(x)(1 − σ(x)), from the output.
            Sigmoid sigmoid {
                f: sigmoid,
                // Each branch's exp argument is never positive, so neither
                // overflows where it is selected.
                wgsl: "select(exp(x) / (1.0 + exp(x)), 1.0 / (1.0 + exp(-x)), x >= 0.0)",
                df: Output(|y| y * (1.0 - y)),
            }
            /// The rectifier max(x, 0) (NaN stays NaN). Gradient: g where
            /// x > 0, else 0 (0 at x = 0), from the input.
            Relu relu {
                f: |x| if x < T::ZERO { T::ZERO } else { x },
                wgsl: "select(x, 0.0, x < 0.0)",
                df: Input(|x| x.gt(0.0)),
            }
            /// Softplus log(1 + eˣ), a smooth ReLU, computed without overflow.
            /// Gradient: g ⊙ σ(x), from the input.
            Softplus softplus {
                f: |x| (if x > T::ZERO { x } else { T::ZERO }) + (-x.abs()).exp().ln_1p(),
                // log(1 + e) = e to f32 precision once e = e^-|x| < 3e-7.
                wgsl: "max(x, 0.0) + select(log(1.0 + exp(-abs(x))), exp(-abs(x)), abs(x) > 15.0)",
                df: Input(|x| x.sigmoid()),
            }
            /// The absolute value |x| (NaN stays NaN). Gradient: g ⊙ sign(x),
            /// with 0 at x = 0 (as in PyTorch), from the input.
            Abs abs {
                f: |x| x.abs(),
                wgsl: "abs(x)",
                df: Input(|x| x.gt(0.0) - Expr::constant(0.0).gt(x)),
            }
            /// log(1 + x), accurate for small |x|. Gradient: g ⊙ 1/(1 + x),
            /// from the input.
            Log1p log1p {
                f: |x| x.ln_1p(),
                // WGSL has no log1p; see `dg_log1p` in shaders/expr_fns.wgsl.
                wgsl: "dg_log1p(x)",
                df: Input(|x| 1.0 / (1.0 + x)),
            }
            /// eˣ − 1, accurate for small |x|. Gradient: g ⊙ eˣ = g ⊙ (y + 1),
            /// from the output.
            Expm1 expm1 {
                f: |x| x.exp_m1(),
                // WGSL has no expm1; see `dg_expm1` in shaders/expr_fns.wgsl.
                wgsl: "dg_expm1(x)",
                df: Output(|y| y + 1.0),
            }
        }
    };
}
pub(crate) use unary_ops;

/// Generates `UnaryOp` (name, WGSL, derivative, scalar function and a
/// vectorisable loop per op) and the `Expr` builder methods from the table.
/// Expanded in `expr.rs`, where `Expr` lives, so that the generated code's
/// names resolve there.
macro_rules! define_unary {
    ($( $(#[doc = $doc:literal])* $variant:ident $method:ident {
        f: $f:expr, wgsl: $wgsl:literal, df: $df:ident($rule:expr) $(,)?
    } )*) => {
        /// A unary element-wise op (see the table in this module).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum UnaryOp {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl UnaryOp {
            /// Every unary op, in table order.
            pub const ALL: &'static [UnaryOp] = &[$(UnaryOp::$variant),*];

            /// The op's name (also its `Tensor` method).
            pub fn name(self) -> &'static str {
                match self { $(UnaryOp::$variant => stringify!($method),)* }
            }

            /// The WGSL expression, an f32 expression in `x`.
            pub fn wgsl(self) -> &'static str {
                match self { $(UnaryOp::$variant => $wgsl,)* }
            }

            /// The derivative rule.
            pub fn df(self) -> Df {
                match self { $(UnaryOp::$variant => Df::$df($rule),)* }
            }

            /// `f(x)`.
            #[inline]
            pub fn apply<T: Float>(self, x: T) -> T {
                match self { $(UnaryOp::$variant => unary_fn::<T, _>($f)(x),)* }
            }

            /// `v[i] = f(v[i])`, one loop per op so that each inlines and
            /// vectorises, compiled for AVX-512 or AVX2 where the CPU has
            /// it (`zip::widest`, `zip::wide`).
            pub fn map<T: Float>(self, v: &mut [T]) {
                #[cfg(target_arch = "x86_64")]
                if super::zip::widest() {
                    // SAFETY: the CPU has AVX-512.
                    return unsafe { self.map_avx512(v) };
                }
                #[cfg(target_arch = "x86_64")]
                if super::zip::wide() {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { self.map_avx2(v) };
                }
                self.map_here(v)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            pub(crate) unsafe fn map_avx2<T: Float>(self, v: &mut [T]) {
                self.map_here(v)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            pub(crate) unsafe fn map_avx512<T: Float>(self, v: &mut [T]) {
                self.map_here(v)
            }

            #[inline(always)]
            pub(crate) fn map_here<T: Float>(self, v: &mut [T]) {
                match self {
                    $(UnaryOp::$variant => {
                        let f = unary_fn::<T, _>($f);
                        v.iter_mut().for_each(|e| *e = f(*e));
                    })*
                }
            }

            /// `out[i] = f(x[i])`, like `map`.
            pub fn map_into<T: Float>(self, out: &mut [T], x: &[T]) {
                #[cfg(target_arch = "x86_64")]
                if super::zip::widest() {
                    // SAFETY: the CPU has AVX-512.
                    return unsafe { self.map_into_avx512(out, x) };
                }
                #[cfg(target_arch = "x86_64")]
                if super::zip::wide() {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { self.map_into_avx2(out, x) };
                }
                self.map_into_here(out, x)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            pub(crate) unsafe fn map_into_avx2<T: Float>(self, out: &mut [T], x: &[T]) {
                self.map_into_here(out, x)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            pub(crate) unsafe fn map_into_avx512<T: Float>(self, out: &mut [T], x: &[T]) {
                self.map_into_here(out, x)
            }

            #[inline(always)]
            pub(crate) fn map_into_here<T: Float>(self, out: &mut [T], x: &[T]) {
                match self {
                    $(UnaryOp::$variant => {
                        let f = unary_fn::<T, _>($f);
                        out.iter_mut().zip(x).for_each(|(e, &v)| *e = f(v));
                    })*
                }
            }
        }

        impl Expr {
            $(
                $(#[doc = $doc])*
                pub fn $method(&self) -> Expr {
                    Expr::unary(UnaryOp::$variant, self.clone())
                }
            )*
        }
    };
}

pub(crate) use define_unary;
