//! The only place WGSL text is generated. An [`Expr`] becomes one WGSL
//! expression over locals `x0, x1, …` (the inputs) and `acc` (a matmul
//! accumulator); the inputs become binding declarations and `let` loads.
//! [`fill`] splices these into a template at its markers:
//!
//! - `//@EXPR_FNS`: the helper functions of `shaders/expr_fns.wgsl` and one
//!   function per table op ([`op_functions`]),
//! - `//@BINDINGS`: one `var<storage, read>` per input with its own buffer,
//! - `//@LOADS`: one `let xJ = …;` per input,
//! - `/*@EXPR*/<default>`: the expression (the default keeps the bare
//!   template valid WGSL).

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::ir::{BinaryOp, Expr, UnaryOp};

/// How one input of an element-wise expression is read, decided per plan
/// from its view so that the common cases skip the stride arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Strides are the dense strides of the shape: read at the linear index.
    Contiguous,
    /// All strides are 0: every element reads element 0.
    Broadcast,
    /// General strides, through the template's offset function.
    Strided,
    /// The input is the output buffer itself (in place, dense): read `out`
    /// at the linear index; it gets no binding of its own.
    InPlace,
}

/// Where a template evaluates its inputs: the names it uses, so the loads
/// fit it.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    /// Prefix of the input buffers' names (`in` gives `in0, in1, …`).
    pub prefix: &'static str,
    /// WGSL index of the current element in a dense layout.
    pub linear: &'static str,
    /// Function `(input: u32, args…) -> u32` giving a strided offset.
    pub offset_fn: &'static str,
    /// The arguments after the input number.
    pub offset_args: &'static str,
    /// First binding number for the inputs.
    pub first_binding: u32,
}

/// The WGSL expression for `e`. `inputs` is how many inputs exist;
/// `allow_acc` whether `Expr::Acc` may appear (matmul epilogues only).
pub fn expr(e: &Expr, inputs: usize, allow_acc: bool) -> Result<String> {
    let mut s = String::new();
    write_expr(&mut s, e, inputs, allow_acc)?;
    Ok(s)
}

fn write_expr(s: &mut String, e: &Expr, inputs: usize, allow_acc: bool) -> Result<()> {
    match e {
        Expr::Input(i) if *i < inputs => s.push_str(&format!("x{i}")),
        Expr::Input(i) => {
            return Err(Error::invalid(
                "wgpu elementwise",
                format!("expression reads input {i} of {inputs}"),
            ));
        }
        Expr::Const(bits) => s.push_str(&literal(f64::from_bits(*bits) as f32)),
        Expr::Acc if allow_acc => s.push_str("acc"),
        Expr::Acc => {
            return Err(Error::invalid(
                "wgpu elementwise",
                "`acc` outside a matmul epilogue",
            ));
        }
        Expr::Unary(op, a) => {
            s.push_str(&format!("op_{}(", op.name()));
            write_expr(s, a, inputs, allow_acc)?;
            s.push(')');
        }
        Expr::Binary(op, a, b) => {
            s.push_str(&format!("op_{}(", op.name()));
            write_expr(s, a, inputs, allow_acc)?;
            s.push_str(", ");
            write_expr(s, b, inputs, allow_acc)?;
            s.push(')');
        }
        Expr::Select(c, a, b) => {
            // WGSL's select(f, t, cond) evaluates both; only one is used.
            s.push_str("select(");
            write_expr(s, b, inputs, allow_acc)?;
            s.push_str(", ");
            write_expr(s, a, inputs, allow_acc)?;
            s.push_str(", ");
            write_expr(s, c, inputs, allow_acc)?;
            s.push_str(" != 0.0)");
        }
    }
    Ok(())
}

/// One WGSL function per table op (`op_tanh(x)`, `op_add(a, b)`, …), from
/// the op tables' WGSL expressions; spliced into every template that
/// evaluates expressions.
pub fn op_functions() -> String {
    let mut s = String::new();
    for op in UnaryOp::ALL {
        let _ = writeln!(
            s,
            "fn op_{}(x: f32) -> f32 {{\n    return {};\n}}",
            op.name(),
            op.wgsl()
        );
    }
    for op in BinaryOp::ALL {
        let _ = writeln!(
            s,
            "fn op_{}(a: f32, b: f32) -> f32 {{\n    return {};\n}}",
            op.name(),
            op.wgsl()
        );
    }
    s
}

/// An f32 constant. Finite values print in Rust's shortest round-trip form
/// (exact); WGSL has no literal for infinities or NaN, so those go through
/// a bit pattern.
pub fn literal(v: f32) -> String {
    if !v.is_finite() {
        return format!("dg_bits({:#010x}u)", v.to_bits());
    }
    let body = format!("{:?}f", v.abs());
    if v.is_sign_negative() {
        format!("(-{body})")
    } else {
        body
    }
}

/// Binding declarations for the inputs that have their own buffer.
pub fn bindings(access: &[Access], site: &Site) -> String {
    let mut s = String::new();
    let mut b = site.first_binding;
    for (j, a) in access.iter().enumerate() {
        if *a == Access::InPlace {
            continue;
        }
        let _ = writeln!(
            s,
            "@group(0) @binding({b}) var<storage, read> {}{j}: array<f32>;",
            site.prefix
        );
        b += 1;
    }
    s
}

/// One `let xJ = …;` per input.
pub fn loads(access: &[Access], site: &Site) -> String {
    let mut s = String::new();
    for (j, a) in access.iter().enumerate() {
        let p = site.prefix;
        let src = match a {
            Access::Contiguous => format!("{p}{j}[{}]", site.linear),
            Access::Broadcast => format!("{p}{j}[0]"),
            Access::Strided => format!("{p}{j}[{}({j}u, {})]", site.offset_fn, site.offset_args),
            Access::InPlace => format!("out[{}]", site.linear),
        };
        let _ = writeln!(s, "    let x{j} = {src};");
    }
    s
}

/// Splices the generated pieces into `template`. Every marker must occur
/// exactly once, so a template edit that drops one is caught here.
pub fn fill(template: &str, fns: &str, bindings: &str, loads: &str, expr: &str) -> Result<String> {
    let mut out = template.to_string();
    for (marker, with) in [
        ("//@EXPR_FNS", fns),
        ("//@BINDINGS", bindings),
        ("//@LOADS", loads),
    ] {
        out = replace_once(&out, marker, with)?;
    }
    if out.matches("/*@EXPR*/").count() != 1 {
        return Err(missing("/*@EXPR*/"));
    }
    let start = out.find("/*@EXPR*/").ok_or_else(|| missing("/*@EXPR*/"))?;
    let rest = &out[start + "/*@EXPR*/".len()..];
    // The default expression runs to the end of the statement.
    let end = rest.find(';').ok_or_else(|| missing("; after /*@EXPR*/"))?;
    Ok(format!("{}{}{}", &out[..start], expr, &rest[end..]))
}

/// Replaces the text between the lines `//@{name}_BEGIN` and
/// `//@{name}_END` (markers included) with `with`.
fn replace_region(s: &str, name: &str, with: &str) -> Result<String> {
    let (begin, end) = (format!("//@{name}_BEGIN"), format!("//@{name}_END"));
    if s.matches(&begin).count() != 1 || s.matches(&end).count() != 1 {
        return Err(missing(&begin));
    }
    let a = s.find(&begin).ok_or_else(|| missing(&begin))?;
    let b = s.find(&end).ok_or_else(|| missing(&end))? + end.len();
    if b < a {
        return Err(missing(&end));
    }
    Ok(format!("{}{}{}", &s[..a], with, &s[b..]))
}

/// The matmul template with a variant's tiling constants (the text
/// between `//@TILING_BEGIN` and `//@TILING_END`).
pub fn tiling(template: &str, constants: &str) -> Result<String> {
    replace_region(template, "TILING", constants)
}

/// Subgroup builtins each entry point that reduces across the workgroup
/// takes when its module uses subgroups, and what it does with them first.
const SG_ARGS: &str = "@builtin(subgroup_id) sg_id: u32, @builtin(num_subgroups) sg_count: u32, \
                       @builtin(subgroup_invocation_id) sg_lane: u32, @builtin(subgroup_size) sg_size: u32,";
const SG_INIT: &str = "SG = vec4<u32>(sg_id, sg_count, sg_lane, sg_size);";

/// A module with workgroup reductions (reduce.wgsl, softmax.wgsl) as is,
/// or, with `subgroups`, with `subgroup` (shaders/subgroup.wgsl) over its
/// `WG_REDUCE` region and the subgroup builtins at every `/*@SG_ARGS*/`
/// and `//@SG_INIT`.
pub fn reductions(src: &str, subgroups: bool, subgroup: &str) -> Result<String> {
    let args = src.matches("/*@SG_ARGS*/").count();
    if args == 0 || args != src.matches("//@SG_INIT").count() {
        return Err(missing("/*@SG_ARGS*/ with //@SG_INIT"));
    }
    if !subgroups {
        return Ok(src.to_string());
    }
    Ok(replace_region(src, "WG_REDUCE", subgroup)?
        .replace("/*@SG_ARGS*/", SG_ARGS)
        .replace("//@SG_INIT", SG_INIT))
}

fn replace_once(s: &str, marker: &str, with: &str) -> Result<String> {
    if s.matches(marker).count() != 1 {
        return Err(missing(marker));
    }
    Ok(s.replacen(marker, with, 1))
}

fn missing(marker: &str) -> Error {
    Error::Gpu(format!(
        "shader template: marker `{marker}` must occur exactly once"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inp(i: usize) -> Expr {
        Expr::Input(i)
    }

    #[test]
    fn exact_expressions() {
        let e = Expr::binary(
            BinaryOp::Add,
            Expr::binary(BinaryOp::Mul, inp(0), Expr::constant(2.0)),
            Expr::unary(UnaryOp::Sigmoid, inp(1)),
        );
        assert_eq!(
            expr(&e, 2, false).unwrap(),
            "op_add(op_mul(x0, 2.0f), op_sigmoid(x1))"
        );
        let e = Expr::binary(BinaryOp::Max, Expr::Acc, Expr::constant(-0.5));
        assert_eq!(expr(&e, 0, true).unwrap(), "op_maximum(acc, (-0.5f))");
        let e = Expr::unary(UnaryOp::Recip, Expr::unary(UnaryOp::Neg, inp(0)));
        assert_eq!(expr(&e, 1, false).unwrap(), "op_recip(op_neg(x0))");
        let e = Expr::select(inp(0), inp(1), Expr::constant(0.0));
        assert_eq!(expr(&e, 2, false).unwrap(), "select(0.0f, x1, x0 != 0.0)");
    }

    #[test]
    fn literals_round_trip() {
        assert_eq!(literal(1e-7), "1e-7f");
        assert_eq!(literal(f32::MAX), "3.4028235e38f");
        assert_eq!(literal(-0.0), "(-0.0f)");
        assert_eq!(literal(f32::INFINITY), "dg_bits(0x7f800000u)");
        assert_eq!(literal(f32::NEG_INFINITY), "dg_bits(0xff800000u)");
        assert!(literal(f32::NAN).starts_with("dg_bits(0x7fc"));
        // f64 constants round to the nearest f32, as on the CPU backend.
        let e = Expr::constant(0.1);
        assert_eq!(expr(&e, 0, false).unwrap(), "0.1f");
    }

    #[test]
    fn rejects_bad_expressions() {
        assert!(expr(&Expr::Acc, 0, false).is_err());
        assert!(expr(&inp(2), 2, false).is_err());
    }

    #[test]
    fn loads_and_bindings() {
        let site = Site {
            prefix: "in",
            linear: "i",
            offset_fn: "view_offset",
            offset_args: "i",
            first_binding: 2,
        };
        let acc = [
            Access::Contiguous,
            Access::InPlace,
            Access::Strided,
            Access::Broadcast,
        ];
        assert_eq!(
            bindings(&acc, &site),
            "@group(0) @binding(2) var<storage, read> in0: array<f32>;\n\
             @group(0) @binding(3) var<storage, read> in2: array<f32>;\n\
             @group(0) @binding(4) var<storage, read> in3: array<f32>;\n"
        );
        assert_eq!(
            loads(&acc, &site),
            "    let x0 = in0[i];\n    let x1 = out[i];\n    \
             let x2 = in2[view_offset(2u, i)];\n    let x3 = in3[0];\n"
        );
    }

    #[test]
    fn regions_and_subgroup_markers() {
        let t = "a\n//@TILING_BEGIN\nconst X = 1;\n//@TILING_END\nb";
        assert_eq!(tiling(t, "const X = 2;\n").unwrap(), "a\nconst X = 2;\n\nb");
        assert!(tiling("no markers", "").is_err());
        let src = "//@WG_REDUCE_BEGIN\ntree\n//@WG_REDUCE_END\nfn f(/*@SG_ARGS*/) {\n//@SG_INIT\n}";
        assert_eq!(reductions(src, false, "sg").unwrap(), src);
        let with = reductions(src, true, "sg").unwrap();
        assert!(with.starts_with("sg\nfn f(@builtin(subgroup_id)"), "{with}");
        assert!(with.contains("SG = vec4<u32>(sg_id"), "{with}");
        assert!(reductions("fn f() {}", true, "sg").is_err());
    }

    #[test]
    fn fill_checks_markers() {
        let t = "//@EXPR_FNS\n//@BINDINGS\nfn f() -> f32 {\n//@LOADS\n return /*@EXPR*/0.0;\n}";
        let s = fill(t, "A", "B", "C", "x0").unwrap();
        assert_eq!(s, "A\nB\nfn f() -> f32 {\nC\n return x0;\n}");
        assert!(fill("//@BINDINGS", "", "", "", "x").is_err());
    }
}
