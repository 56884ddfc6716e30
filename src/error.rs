//! The crate's error type.

use thiserror::Error;

/// `std::result::Result` with this crate's [`Error`](enum@Error) as the default
/// error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine. Errors from building an op
/// (shapes, dtypes, devices, arguments) are returned when the op is called,
/// before anything runs; device and I/O errors when a value is realized,
/// saved or loaded. Each message names the op or file at fault.
#[derive(Debug, Error)]
pub enum Error {
    /// Shapes that an op cannot combine; names the op and both shapes.
    #[error("{op}: incompatible shapes {lhs:?} and {rhs:?}{detail}")]
    Shape {
        /// The op (its method name).
        op: &'static str,
        /// The first operand's shape.
        lhs: Vec<usize>,
        /// The second operand's shape (or the shape asked for).
        rhs: Vec<usize>,
        /// Empty, or `": "` and what does not fit (the axis, the sizes).
        detail: String,
    },
    /// Two operands of different dtypes where an op needs one.
    #[error("{op}: dtype mismatch: {lhs} vs {rhs}")]
    DType {
        /// The op.
        op: &'static str,
        /// The first operand's dtype.
        lhs: crate::DType,
        /// The second operand's dtype.
        rhs: crate::DType,
    },
    /// An id (embedding row, class label) not below the number of rows or
    /// classes; ids are checked before the op runs.
    #[error("{op}: id {id} at position {position} is out of range for {rows} rows")]
    IdOutOfRange {
        /// The op.
        op: &'static str,
        /// The offending id.
        id: u64,
        /// Its index in the (flattened) id tensor; the first bad one.
        position: usize,
        /// The number of rows (or classes) ids must stay below.
        rows: usize,
    },
    /// An argument an op does not accept (an axis out of range, a
    /// non-float tensor, pending ids, …).
    #[error("invalid argument to {op}: {msg}")]
    Invalid {
        /// The op or function.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// Operands on different devices; move one with `Tensor::to_device`.
    #[error("{op}: tensors live on different devices ({lhs} and {rhs})")]
    Device {
        /// The op.
        op: &'static str,
        /// The first operand's device, as displayed.
        lhs: String,
        /// The second operand's device, as displayed.
        rhs: String,
    },
    /// A GPU-side failure: no adapter, out of memory, device lost, timeout,
    /// a buffer over the adapter's limits.
    #[error("gpu: {0}")]
    Gpu(String),
    /// A [`gradcheck`](crate::gradcheck) mismatch: which input and element,
    /// the analytic and numeric values.
    #[error("gradient check failed: {0}")]
    GradCheck(String),
    /// A failed file operation.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path (`"reading PATH"`).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Malformed input file: names file, line (0 for a fault in the file as
    /// a whole, e.g. a binary format) and what was expected.
    #[error("{file}{}: {msg}", line_suffix(*.line))]
    Parse {
        /// The file, as given.
        file: String,
        /// 1-based line, or 0 when the fault is not on one line.
        line: usize,
        /// What is wrong, and what was expected.
        msg: String,
    },
    /// Anything else (an internal inconsistency of the scheduler, a custom
    /// op's own message).
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
    /// [`Error::Invalid`] for `op`.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
        Error::Invalid {
            op,
            msg: msg.into(),
        }
    }
    /// [`Error::Shape`] for `op` without detail.
    pub fn shape(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Error {
        Error::Shape {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            detail: String::new(),
        }
    }
    /// [`Error::Shape`] for `op`, the message ending in `: detail`.
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
    /// [`Error::Io`]: `context` says what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Locks `m`, taking over a lock poisoned by a panicking thread. Nothing in
/// the engine holds a lock across user code or leaves guarded data half
/// written on a panic, so the data behind a poisoned lock is still
/// consistent, and a panic elsewhere should not become one here.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
