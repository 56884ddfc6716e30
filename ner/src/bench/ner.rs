//! The window-NER classifier of the lecture as a benchmark: one hidden tanh
//! layer, softmax cross-entropy, f32, no capitalization feature.
//!
//! The batch is part of a training step (new word ids every step), so the
//! upload of the id tensors is timed. Drawing the random ids is not: a few
//! batches are generated on the host at setup and cycled, and each
//! iteration's copy is made before its timer starts.

use deltagrad::model::{Activation, Batch, WindowNet, WindowNetConfig};
use deltagrad::{DType, Device, Error, Result, Sgd, Tensor, no_grad};
use rand::Rng;

use super::cases::{Case, Shape, Work};

/// Distinct batches cycled through, so no step reuses the previous ids.
const BATCHES: usize = 4;
/// Small enough that random-label training stays finite over many steps.
const LR: f64 = 0.01;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NerShape {
    pub batch: usize,
    pub dim: usize,
    pub hidden: usize,
    pub classes: usize,
    pub vocab: usize,
    pub window: usize,
}

impl NerShape {
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("batch", self.batch),
            ("dim", self.dim),
            ("hidden", self.hidden),
            ("classes", self.classes),
            ("vocab", self.vocab),
            ("window", self.window),
        ];
        for (name, v) in fields {
            if v == 0 {
                return Err(Error::invalid(
                    "bench",
                    format!("--{name} must be at least 1"),
                ));
            }
        }
        if u32::try_from(self.vocab).is_err() || u32::try_from(self.classes).is_err() {
            return Err(Error::invalid(
                "bench",
                "--vocab and --classes must fit in u32 ids",
            ));
        }
        let elems = [
            self.batch.checked_mul(self.window),
            self.vocab.checked_mul(self.dim),
            self.window
                .checked_mul(self.dim)
                .and_then(|wd| wd.checked_mul(self.batch.max(self.hidden))),
        ];
        if elems
            .iter()
            .any(|e| e.is_none_or(|e| e > u32::MAX as usize))
        {
            return Err(Error::invalid(
                "bench",
                format!("NER shape {self:?} has tensors over 2^32 elements"),
            ));
        }
        Ok(())
    }

    /// Matmul FLOPs of the forward pass: x·W₁ (`[B, w·d]·[w·d, H]`) and
    /// h·U (`[B, H]·[H, C]`). Element-wise work, the gather and the loss
    /// are not counted: they are a few percent and not what GFLOP/s means.
    pub fn forward_flops(&self) -> f64 {
        let (b, wd, h, c) = (
            self.batch as f64,
            (self.window * self.dim) as f64,
            self.hidden as f64,
            self.classes as f64,
        );
        2.0 * b * wd * h + 2.0 * b * h * c
    }

    /// Forward plus backward: each forward product has two backward
    /// products of the same size (∂W = xᵀ·δ and ∂x = δ·Wᵀ; ∂x of the first
    /// layer is needed for the word vectors), so three times the forward.
    pub fn step_flops(&self) -> f64 {
        3.0 * self.forward_flops()
    }

    fn config(&self) -> WindowNetConfig {
        WindowNetConfig {
            vocab: self.vocab,
            dim: self.dim,
            window: self.window,
            cap_classes: 0,
            cap_dim: 0,
            hidden: vec![self.hidden],
            classes: self.classes,
            activation: Activation::Tanh,
        }
    }
}

pub struct NerCase {
    name: String,
    shape: NerShape,
    /// Forward+backward+SGD when set, else the forward loss alone.
    step: bool,
    device: Device,
    net: WindowNet,
    sgd: Sgd,
    /// Host-side (word ids, labels) per batch.
    batches: Vec<(Vec<u32>, Vec<u32>)>,
    next: usize,
    pending: Option<(Vec<u32>, Vec<u32>)>,
}

impl NerCase {
    pub fn new(name: &str, shape: &NerShape, step: bool, device: &Device) -> Result<NerCase> {
        shape.validate()?;
        let mut rng = Tensor::rng(0x5eed);
        let net = WindowNet::new(shape.config(), DType::F32, device, &mut rng)?;
        let sgd = Sgd::new(net.params(), LR);
        let batches = (0..BATCHES)
            .map(|_| {
                let words = (0..shape.batch * shape.window)
                    .map(|_| rng.random_range(0..shape.vocab as u32))
                    .collect();
                let labels = (0..shape.batch)
                    .map(|_| rng.random_range(0..shape.classes as u32))
                    .collect();
                (words, labels)
            })
            .collect();
        device.sync()?;
        Ok(NerCase {
            name: name.to_string(),
            shape: shape.clone(),
            step,
            device: device.clone(),
            net,
            sgd,
            batches,
            next: 0,
            pending: None,
        })
    }
}

impl Case for NerCase {
    fn name(&self) -> &str {
        &self.name
    }

    fn shape(&self) -> Shape {
        let s = &self.shape;
        [
            ("batch", s.batch),
            ("dim", s.dim),
            ("hidden", s.hidden),
            ("classes", s.classes),
            ("vocab", s.vocab),
            ("window", s.window),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn work(&self) -> Work {
        Work {
            flops: Some(if self.step {
                self.shape.step_flops()
            } else {
                self.shape.forward_flops()
            }),
            bytes: None,
            windows: Some(self.shape.batch),
        }
    }

    fn prepare(&mut self) -> Result<()> {
        self.pending = Some(self.batches[self.next % self.batches.len()].clone());
        self.next += 1;
        Ok(())
    }

    fn run(&mut self) -> Result<()> {
        let (words, labels) = match self.pending.take() {
            Some(p) => p,
            // Called without `prepare`: the copy is timed, but still correct.
            None => self.batches[0].clone(),
        };
        let (b, w) = (self.shape.batch, self.shape.window);
        let batch = Batch {
            words: Tensor::ids(words, &[b * w], &self.device)?,
            caps: None,
            labels: Tensor::ids(labels, &[b], &self.device)?,
            size: b,
        };
        if self.step {
            let loss = self.net.loss(&batch, None)?;
            loss.backward()?;
            self.sgd.step_with(&[&loss])?;
        } else {
            // Inference: nothing is kept for a backward pass (PyTorch's
            // side runs under `torch.no_grad()` for the same reason).
            let loss = no_grad(|| self.net.loss(&batch, None))?;
            loss.realize()?;
        }
        self.device.sync()
    }
}
