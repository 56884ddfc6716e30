//! User-defined ops: the lecture's "forward/backward API" for a node type.
//!
//! A custom op computes on the host in f64 (values are converted from and to
//! the tensors' dtype), so it runs on every backend; on the GPU backend its
//! inputs are read back and its result uploaded.
//!
//! ```
//! use deltagrad::{CustomOp, Result, Tensor};
//!
//! /// y = x³, dy/dx = 3x².
//! #[derive(Debug)]
//! struct Cube;
//!
//! impl CustomOp for Cube {
//!     fn name(&self) -> &str { "cube" }
//!     fn output_shape(&self, inputs: &[Vec<usize>]) -> Result<Vec<usize>> {
//!         Ok(inputs[0].clone())
//!     }
//!     fn forward(&self, inputs: &[Vec<f64>], _shapes: &[Vec<usize>]) -> Result<Vec<f64>> {
//!         Ok(inputs[0].iter().map(|x| x * x * x).collect())
//!     }
//!     fn backward(&self, inputs: &[Vec<f64>], _shapes: &[Vec<usize>], grad_out: &[f64],
//!                 _input: usize) -> Result<Vec<f64>> {
//!         Ok(inputs[0].iter().zip(grad_out).map(|(x, g)| 3.0 * x * x * g).collect())
//!     }
//! }
//!
//! let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2])?.requires_grad();
//! let y = Tensor::custom(std::sync::Arc::new(Cube), &[&x])?;
//! y.sum()?.backward()?;
//! assert_eq!(x.grad().unwrap().to_vec_f64()?, vec![3.0, 12.0]);
//! # Ok::<(), deltagrad::Error>(())
//! ```

use std::fmt::Debug;

use crate::error::Result;

/// A user-defined op with its own forward and backward rules, computed on
/// the host in f64 (see the module docs for an example). Build a node with
/// [`Tensor::custom`](crate::Tensor::custom).
///
/// Values are passed row-major, one `Vec<f64>` per input, with the inputs'
/// shapes alongside. Returning an error from any method fails the
/// realization that ran it.
pub trait CustomOp: Send + Sync + Debug {
    /// A short name, shown by `explain` and in error messages (the
    /// gradient for input `i` shows as `NAME_gradI`).
    fn name(&self) -> &str;
    /// The output's shape given the inputs' shapes; an error for shapes the
    /// op does not accept.
    fn output_shape(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>>;
    /// The output's values (row-major) from the inputs' values.
    fn forward(&self, inputs: &[Vec<f64>], shapes: &[Vec<usize>]) -> Result<Vec<f64>>;
    /// The local backward rule: given the inputs and the upstream gradient
    /// of the output, the gradient with respect to input `input` (shaped
    /// like that input).
    fn backward(
        &self,
        inputs: &[Vec<f64>],
        shapes: &[Vec<usize>],
        grad_out: &[f64],
        input: usize,
    ) -> Result<Vec<f64>>;
    /// Whether input `input` is differentiable (default: all are).
    fn differentiable(&self, _input: usize) -> bool {
        true
    }
}
