//! Helpers shared by the integration tests.
#![allow(dead_code)]

use deltagrad::Device;
use deltagrad::model::{Activation, WindowNetConfig};

/// Whether CI demands a GPU adapter (then a missing one fails the test).
pub fn gpu_required() -> bool {
    std::env::var("DELTAGRAD_REQUIRE_GPU").as_deref() == Ok("1")
}

/// Reports a missing adapter: a failure under `DELTAGRAD_REQUIRE_GPU=1`,
/// else a printed skip.
pub fn no_gpu(e: impl std::fmt::Display) {
    assert!(
        !gpu_required(),
        "DELTAGRAD_REQUIRE_GPU=1 but no GPU adapter: {e}"
    );
    eprintln!("skipping: no GPU adapter ({e})");
}

/// The GPU device (software adapters allowed), or `None` to skip.
pub fn gpu() -> Option<Device> {
    Device::gpu().map_err(no_gpu).ok()
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
    }
}
