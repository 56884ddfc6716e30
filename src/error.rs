//! The crate's error type.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// Shapes that an op cannot combine; names the op and both shapes.
    #[error("{op}: incompatible shapes {lhs:?} and {rhs:?}{detail}")]
    Shape {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
        detail: String,
    },
    #[error("{op}: dtype mismatch: {lhs} vs {rhs}")]
    DType {
        op: &'static str,
        lhs: crate::DType,
        rhs: crate::DType,
    },
    #[error("{op}: id {id} at position {position} is out of range for {rows} rows")]
    IdOutOfRange {
        op: &'static str,
        id: u64,
        position: usize,
        rows: usize,
    },
    #[error("invalid argument to {op}: {msg}")]
    Invalid { op: &'static str, msg: String },
    #[error("{op}: tensors live on different devices ({lhs} and {rhs})")]
    Device {
        op: &'static str,
        lhs: String,
        rhs: String,
    },
    /// A GPU-side failure: no adapter, out of memory, device lost, timeout,
    /// a buffer over the adapter's limits.
    #[error("gpu: {0}")]
    Gpu(String),
    #[error("gradient check failed: {0}")]
    GradCheck(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Malformed input file: names file, line (0 for a fault in the file as
    /// a whole, e.g. a binary format) and what was expected.
    #[error("{file}{}: {msg}", line_suffix(*.line))]
    Parse {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("{0}")]
    Other(String),
}

/// `:line`, or nothing for line 0.
fn line_suffix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

impl Error {
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
        Error::Invalid {
            op,
            msg: msg.into(),
        }
    }
    pub fn shape(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Error {
        Error::Shape {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            detail: String::new(),
        }
    }
    pub fn shape_detail(
        op: &'static str,
        lhs: &[usize],
        rhs: &[usize],
        detail: impl Into<String>,
    ) -> Error {
        Error::Shape {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            detail: format!(": {}", detail.into()),
        }
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
