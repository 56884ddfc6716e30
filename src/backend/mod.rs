//! Backends execute plans. `cpu` is the reference (f32 and f64); `wgpu`
//! runs WGSL compute shaders (f32, u32 ids). Both implement [`Backend`];
//! the layers above reach them only through it.

mod api;
// Three public items of the CPU backend still lack docs; they are written
// once the backend's threading work, which rewrites that file, is merged.
#[allow(missing_docs)]
pub mod cpu;
pub mod wgpu;

pub use api::{Backend, Counters, DeviceBuffer, Storage, check_inputs};
