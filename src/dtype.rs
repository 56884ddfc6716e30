//! Element types.

use std::fmt;

/// The element type of a tensor. Float tensors (f32, f64) take part in
/// autograd; u32 tensors hold ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: the usual type, and the only float type of the GPU
    /// backend.
    F32,
    /// 64-bit float, on the CPU backend only (for gradient checks); the GPU
    /// backend refuses it.
    F64,
    /// Integer ids (embedding rows, class labels). Not differentiable.
    U32,
}

impl DType {
    /// Bytes per element (4 or 8).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F64 => 8,
        }
    }
    /// Whether this is F32 or F64.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::U32 => "u32",
        })
    }
}

/// Values on the host, as read back from or uploaded to a backend.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// f32 values.
    F32(Vec<f32>),
    /// f64 values.
    F64(Vec<f64>),
    /// u32 ids.
    U32(Vec<u32>),
}

impl HostData {
    /// The dtype of the values held.
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::F64(_) => DType::F64,
            HostData::U32(_) => DType::U32,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::F64(v) => v.len(),
            HostData::U32(v) => v.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `len` zeros of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> HostData {
        match dtype {
            DType::F32 => HostData::F32(vec![0.0; len]),
            DType::F64 => HostData::F64(vec![0.0; len]),
            DType::U32 => HostData::U32(vec![0; len]),
        }
    }
    /// Values as f64 (ids converted exactly).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            HostData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::F64(v) => v.clone(),
            HostData::U32(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
    /// Values as f32 (f64 rounded).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            HostData::F32(v) => v.clone(),
            HostData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            HostData::U32(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// Converts f64 values into `dtype` (f32: rounded; u32: truncated
    /// toward zero and saturated, as `as u32` does).
    pub fn from_f64(values: &[f64], dtype: DType) -> HostData {
        match dtype {
            DType::F32 => HostData::F32(values.iter().map(|&x| x as f32).collect()),
            DType::F64 => HostData::F64(values.to_vec()),
            DType::U32 => HostData::U32(values.iter().map(|&x| x as u32).collect()),
        }
    }
}
