#![warn(missing_docs)]

//! deltagrad: a tensor autograd engine whose kernels are WGSL compute
//! shaders run through `wgpu`, with a CPU reference backend (f32, f64).
//!
//! Tensor code is define-by-run and lazy: nothing runs until a value is
//! needed; then the whole pending step (forward, backward, optimizer update)
//! is planned at once, fused, and cached for the next step.
//!
//! ```
//! use deltagrad::{Result, Tensor};
//! # fn main() -> Result<()> {
//! let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! let w = Tensor::from_vec(vec![0.5f32, -0.5, 0.25, 1.0], &[2, 2])?.requires_grad();
//! let loss = x.matmul(&w)?.tanh()?.sum()?;
//! loss.backward()?;
//! println!("loss {} dw {:?}", loss.item()?, w.grad().unwrap().to_vec_f32()?);
//! # Ok(())
//! # }
//! ```

// Layers, bottom first; each imports only the ones before it:
// dtype, error, flags, hash → ir → backend → device → schedule → graph →
// tensor → ops → autograd, functional, nn, crf, optim, gradcheck, model.
// ARCHITECTURE.md describes them.
pub mod autograd;
pub mod backend;
pub mod crf;
pub mod device;
pub mod dtype;
pub mod error;
mod flags;
pub mod functional;
pub mod gradcheck;
pub mod graph;
mod hash;
pub mod ir;
pub mod model;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod schedule;
pub mod state_dict;
pub mod tensor;

pub use device::{Device, DeviceKind};
pub use dtype::{DType, HostData};
pub use error::{Error, Result};
pub use graph::{enable_grad, no_grad};
pub use ir::CustomOp;
pub use optim::{Adam, Sgd};
pub use tensor::{Assign, Tensor, plan_for, realize, realize_step};

/// The README's Rust example runs as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
