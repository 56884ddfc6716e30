//! Numeric gradient checking: (f(x + h) − f(x − h)) / 2h, element by
//! element, in f64 on the CPU backend, against the autograd gradient.

use crate::device::Device;
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Tolerances: an element passes when
/// `|analytic − numeric| <= atol + rtol · |numeric|`.
#[derive(Clone, Copy, Debug)]
pub struct GradCheck {
    /// The finite-difference step h (default 1e-6).
    pub step: f64,
    /// Absolute tolerance (default 1e-6).
    pub atol: f64,
    /// Relative tolerance, times |numeric| (default 1e-5).
    pub rtol: f64,
}

impl Default for GradCheck {
    fn default() -> GradCheck {
        GradCheck {
            step: 1e-6,
            atol: 1e-6,
            rtol: 1e-5,
        }
    }
}

/// The worst element of one input.
#[derive(Clone, Debug)]
pub struct Worst {
    /// Which input (index into `inputs`).
    pub input: usize,
    /// The element's row-major index in that input.
    pub index: usize,
    /// The autograd gradient there (0 when the input got no gradient).
    pub analytic: f64,
    /// The central-difference estimate there.
    pub numeric: f64,
    /// |analytic − numeric|.
    pub abs_err: f64,
}

/// Checks `f` at `inputs` (f64 values with shapes). Returns the worst element
/// per input, or an error naming the first input whose worst element is out
/// of tolerance.
///
/// `f` gets the inputs as f64 tensors on the CPU device and must return
/// one f64 value; it is called once for autograd and twice per input
/// element for the differences, so it must be deterministic.
///
/// ```
/// use deltagrad::gradcheck::{GradCheck, check};
/// # fn main() -> deltagrad::Result<()> {
/// // d/dx Σ tanh(x)² = 2 tanh(x)(1 − tanh²(x))
/// let worst = check(
///     |x| x[0].tanh()?.square()?.sum(),
///     &[(vec![0.3, -1.2, 2.0], vec![3])],
///     GradCheck::default(),
/// )?;
/// assert!(worst[0].abs_err < 1e-6);
/// # Ok(())
/// # }
/// ```
pub fn check<F>(f: F, inputs: &[(Vec<f64>, Vec<usize>)], opts: GradCheck) -> Result<Vec<Worst>>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let cpu = Device::cpu();
    let leaf = |vals: &[f64], shape: &[usize], grad: bool| -> Result<Tensor> {
        let t = Tensor::from_host(HostData::F64(vals.to_vec()), shape, &cpu)?;
        Ok(if grad { t.requires_grad() } else { t })
    };
    let params: Vec<Tensor> = inputs
        .iter()
        .map(|(v, s)| leaf(v, s, true))
        .collect::<Result<_>>()?;
    let out = f(&params)?;
    if out.numel() != 1 || out.dtype() != DType::F64 {
        return Err(Error::invalid(
            "gradcheck",
            format!(
                "f must return one f64 value, got {:?} {}",
                out.shape(),
                out.dtype()
            ),
        ));
    }
    out.backward()?;
    let eval = |vals: &[Vec<f64>]| -> Result<f64> {
        let ts: Vec<Tensor> = vals
            .iter()
            .zip(inputs)
            .map(|(v, (_, s))| leaf(v, s, false))
            .collect::<Result<_>>()?;
        f(&ts)?.item()
    };
    let base: Vec<Vec<f64>> = inputs.iter().map(|(v, _)| v.clone()).collect();
    let mut worst = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let analytic = match p.grad() {
            Some(g) => g.to_vec_f64()?,
            None => vec![0.0; p.numel()],
        };
        let w = worst_element(i, &analytic, &base, &eval, &opts)?;
        let limit = opts.atol + opts.rtol * w.numeric.abs();
        if (w.abs_err > limit || w.abs_err.is_nan()) && p.numel() > 0 {
            return Err(Error::GradCheck(format!(
                "input {i} (shape {:?}), element {}: autograd {:.9e} vs numeric {:.9e} \
                 (|diff| {:.3e} > {:.3e})",
                p.shape(),
                w.index,
                w.analytic,
                w.numeric,
                w.abs_err,
                limit
            )));
        }
        worst.push(w);
    }
    Ok(worst)
}

/// Central differences for every element of input `i`; the element most
/// out of tolerance (or the first non-finite one).
fn worst_element(
    i: usize,
    analytic: &[f64],
    base: &[Vec<f64>],
    eval: &dyn Fn(&[Vec<f64>]) -> Result<f64>,
    opts: &GradCheck,
) -> Result<Worst> {
    let mut w = Worst {
        input: i,
        index: 0,
        analytic: 0.0,
        numeric: 0.0,
        abs_err: -1.0,
    };
    for (j, &a) in analytic.iter().enumerate() {
        let mut plus = base.to_vec();
        plus[i][j] += opts.step;
        let mut minus = base.to_vec();
        minus[i][j] -= opts.step;
        let numeric = (eval(&plus)? - eval(&minus)?) / (2.0 * opts.step);
        let err = (a - numeric).abs();
        let excess = err - (opts.atol + opts.rtol * numeric.abs());
        let w_excess = w.abs_err - (opts.atol + opts.rtol * w.numeric.abs());
        if excess > w_excess || !err.is_finite() {
            w = Worst {
                input: i,
                index: j,
                analytic: a,
                numeric,
                abs_err: err,
            };
        }
    }
    Ok(w)
}
