//! Backends execute plans. `cpu` is the reference (f32 and f64); `wgpu`
//! runs WGSL compute shaders (f32, u32 ids). Both implement [`Backend`];
//! the layers above reach them only through it.

mod api;
pub mod cpu;
pub mod wgpu;

pub use api::{Backend, Counters, DeviceBuffer, Storage, check_inputs};
