//! Single-kernel cases: dense matmul (as the backward pass uses it too,
//! with one operand transposed) and element-wise tanh forward and backward,
//! which are bound by memory bandwidth rather than arithmetic.

use deltagrad::{Device, Error, HostData, Result, Tensor};
use rand::Rng;

use super::spec::{Case, Transpose, Work};

/// A realized f32 leaf of uniform values in [-1, 1).
fn random_leaf(shape: &[usize], device: &Device, rng: &mut rand::rngs::StdRng) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_host(HostData::F32(v), shape, device)
}

fn check_len(what: &str, n: usize) -> Result<()> {
    if n == 0 || n > u32::MAX as usize {
        return Err(Error::invalid(
            "bench",
            format!("{what}: {n} elements is out of range"),
        ));
    }
    Ok(())
}

/// `n × n` by `n × n`, FLOPs counted as 2n³ (one multiply and one add per
/// term).
pub struct MatmulCase {
    n: usize,
    trans: Transpose,
    a: Tensor,
    b: Tensor,
    device: Device,
}

impl MatmulCase {
    pub fn new(n: usize, trans: Transpose, device: &Device) -> Result<MatmulCase> {
        check_len("matmul", n.saturating_mul(n))?;
        let mut rng = Tensor::rng(0xa11ce);
        // Square operands, so the stored shape is the same either way; the
        // transpose is applied in `run` as a view.
        let a = random_leaf(&[n, n], device, &mut rng)?;
        let b = random_leaf(&[n, n], device, &mut rng)?;
        device.sync()?;
        Ok(MatmulCase {
            n,
            trans,
            a,
            b,
            device: device.clone(),
        })
    }
}

impl Case for MatmulCase {
    fn work(&self) -> Work {
        let n = self.n as f64;
        Work {
            flops: Some(2.0 * n * n * n),
            bytes: None,
            windows: None,
        }
    }
    fn run(&mut self) -> Result<()> {
        let c = match self.trans {
            Transpose::None => self.a.matmul(&self.b)?,
            Transpose::A => self.a.transpose()?.matmul(&self.b)?,
            Transpose::B => self.a.matmul(&self.b.transpose()?)?,
        };
        c.realize()?;
        self.device.sync()
    }
}

/// `y = tanh(x)` (forward) or `g ⊙ (1 − y²)` (backward, from the saved
/// output as the autograd does it). Bytes counted: each input read once and
/// the output written once, 4 bytes each — the least traffic possible, so
/// GB/s is an effective bandwidth that an unfused plan can only fall short
/// of.
pub struct TanhCase {
    len: usize,
    backward: bool,
    x: Tensor,
    g: Tensor,
    device: Device,
}

impl TanhCase {
    pub fn new(len: usize, backward: bool, device: &Device) -> Result<TanhCase> {
        check_len("tanh", len)?;
        let mut rng = Tensor::rng(0x7a4);
        let x = random_leaf(&[len], device, &mut rng)?;
        let g = if backward {
            random_leaf(&[len], device, &mut rng)?
        } else {
            x.clone()
        };
        device.sync()?;
        Ok(TanhCase {
            len,
            backward,
            x,
            g,
            device: device.clone(),
        })
    }
}

impl Case for TanhCase {
    fn work(&self) -> Work {
        let streams = if self.backward { 3.0 } else { 2.0 };
        Work {
            flops: None,
            bytes: Some(streams * 4.0 * self.len as f64),
            windows: None,
        }
    }
    fn run(&mut self) -> Result<()> {
        let out = if self.backward {
            // `x` stands in for the saved output y (any values in (-1, 1)).
            let y = &self.x;
            self.g.mul(&y.square()?.rsub_scalar(1.0)?)?
        } else {
            self.x.tanh()?
        };
        out.realize()?;
        self.device.sync()
    }
}
