//! The window-NER classifier of the lecture as a benchmark: one hidden tanh
//! layer, softmax cross-entropy, f32, no capitalization feature.
//!
//! The batch is part of a training step (new word ids every step), so the
//! upload of the id tensors is timed. Drawing the random ids is not: a few
//! batches are generated on the host at setup and cycled, and each
//! iteration's copy is made before its timer starts.

use deltagrad::model::{Activation, Batch, WindowNet, WindowNetConfig};
use deltagrad::{DType, Device, Result, Sgd, Tensor, no_grad};
use rand::Rng;

use super::spec::{Case, NerShape, Work};

/// Distinct batches cycled through, so no step reuses the previous ids.
const BATCHES: usize = 4;
/// Small enough that random-label training stays finite over many steps.
const LR: f64 = 0.01;

/// The benchmarked model: one hidden tanh layer, no capitalization feature.
fn config(s: &NerShape) -> WindowNetConfig {
    WindowNetConfig {
        vocab: s.vocab,
        dim: s.dim,
        window: s.window,
        cap_classes: 0,
        cap_dim: 0,
        hidden: vec![s.hidden],
        classes: s.classes,
        activation: Activation::Tanh,
        features: vec![],
    }
}

pub struct NerCase {
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
    pub fn new(shape: &NerShape, step: bool, device: &Device) -> Result<NerCase> {
        shape.validate()?;
        let mut rng = Tensor::rng(0x5eed);
        let net = WindowNet::new(config(shape), DType::F32, device, &mut rng)?;
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
            features: vec![],
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
