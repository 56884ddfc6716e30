//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod layers;
pub mod ops;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use deltagrad::Device;
use deltagrad::model::{Activation, WindowNetConfig};

/// Whether CI demands a GPU adapter (then a missing one fails the test).
pub fn gpu_required() -> bool {
    std::env::var("DELTAGRAD_REQUIRE_GPU").as_deref() == Ok("1")
}

static SKIPPED: AtomicUsize = AtomicUsize::new(0);
static REASON: OnceLock<String> = OnceLock::new();

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> i32;
}

/// At the test binary's exit: one line saying how many GPU tests skipped
/// their GPU part, and why.
extern "C" fn report_skips() {
    let n = SKIPPED.load(Ordering::Relaxed);
    let why = REASON.get().map_or("", |s| s.as_str());
    eprintln!(
        "note: {n} GPU check(s) in this test binary were skipped: no adapter ({why}). \
         Install a Vulkan driver (e.g. mesa-vulkan-drivers) to run them; \
         DELTAGRAD_REQUIRE_GPU=1 makes a missing adapter a failure."
    );
}

/// Reports a missing adapter: a failure under `DELTAGRAD_REQUIRE_GPU=1`,
/// else counted, and summarised in one line when the binary exits.
pub fn no_gpu(e: impl std::fmt::Display) {
    assert!(
        !gpu_required(),
        "DELTAGRAD_REQUIRE_GPU=1 but no GPU adapter: {e}"
    );
    SKIPPED.fetch_add(1, Ordering::Relaxed);
    REASON.get_or_init(|| {
        // SAFETY: registers a plain function with no captured state.
        unsafe { atexit(report_skips) };
        e.to_string()
    });
}

/// The GPU device (software adapters allowed), or `None` to skip. Opened
/// with the tests' options (the fixed heuristic's matmul variants, nothing
/// written to the tuning cache); `Device::gpu()` returns it from then on.
pub fn gpu() -> Option<Device> {
    Device::gpu_with_options(deltagrad::backend::wgpu::WgpuOptions::software_ok())
        .map_err(no_gpu)
        .ok()
}

/// A small window-NER model configuration.
pub fn ner_config(hidden: usize) -> WindowNetConfig {
    WindowNetConfig {
        vocab: 50,
        dim: 4,
        window: 5,
        cap_classes: 0,
        cap_dim: 0,
        hidden: vec![hidden],
        classes: 5,
        activation: Activation::Tanh,
        features: vec![],
    }
}

/// SGD training of a small window-NER model on random batches.
pub struct NerTrainer {
    pub cfg: WindowNetConfig,
    pub net: deltagrad::model::WindowNet,
    pub sgd: deltagrad::Sgd,
    pub device: Device,
    pub rng: rand::rngs::StdRng,
}

impl NerTrainer {
    pub fn new(device: &Device, hidden: usize, seed: u64) -> deltagrad::Result<NerTrainer> {
        let cfg = ner_config(hidden);
        let mut rng = deltagrad::Tensor::rng(seed);
        let net =
            deltagrad::model::WindowNet::new(cfg.clone(), deltagrad::DType::F32, device, &mut rng)?;
        let sgd = deltagrad::Sgd::new(net.params(), 0.1);
        Ok(NerTrainer {
            cfg,
            net,
            sgd,
            device: device.clone(),
            rng,
        })
    }

    /// One forward + backward + update step on a fresh batch of `batch`.
    pub fn step(&mut self, batch: usize) -> deltagrad::Result<()> {
        let b = deltagrad::model::random_batch(&self.cfg, batch, &self.device, &mut self.rng)?;
        let loss = self.net.loss(&b, None)?;
        loss.backward()?;
        self.sgd.step_with(&[&loss])
    }
}

/// x³ as a custom op with its correct backward, 3x²·g (forward and
/// backward on the host, in f64).
#[derive(Debug)]
pub struct Cube;

impl deltagrad::CustomOp for Cube {
    fn name(&self) -> &str {
        "cube"
    }
    fn output_shape(&self, s: &[Vec<usize>]) -> deltagrad::Result<Vec<usize>> {
        Ok(s[0].clone())
    }
    fn forward(&self, x: &[Vec<f64>], _: &[Vec<usize>]) -> deltagrad::Result<Vec<f64>> {
        Ok(x[0].iter().map(|v| v * v * v).collect())
    }
    fn backward(
        &self,
        x: &[Vec<f64>],
        _: &[Vec<usize>],
        g: &[f64],
        _: usize,
    ) -> deltagrad::Result<Vec<f64>> {
        Ok(x[0].iter().zip(g).map(|(v, g)| 3.0 * v * v * g).collect())
    }
}
