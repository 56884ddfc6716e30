//! Temporary stand-in while the wgpu backend is written.
use crate::dtype::DType;
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct GpuBuffer;
impl GpuBuffer {
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    pub fn dtype(&self) -> DType {
        DType::F32
    }
}
pub struct WgpuBackend;
impl WgpuBackend {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(_allow_software: bool) -> Result<crate::backend::cpu::CpuBackend> {
        Err(Error::Gpu("stub".into()))
    }
}
