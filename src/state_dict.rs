//! Named tensors saved to and loaded from safetensors files, the format of
//! PyTorch's `safetensors.torch.save_file` / `load_file` and of candle.
//!
//! ```
//! use deltagrad::state_dict::{StateDict, load_safetensors, save_safetensors};
//! use deltagrad::{DType, Device, Result, Tensor};
//! # fn main() -> Result<()> {
//! # let dir = std::env::temp_dir().join(format!("state-dict-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let w = Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 0.25], &[2, 2])?;
//! let b = Tensor::from_vec(vec![0.0f64, 0.1], &[2])?;
//! let path = dir.join("model.safetensors");
//! save_safetensors(&path, &[("w", &w), ("b", &b)])?;
//!
//! // Back as (name, tensor) pairs in name order ...
//! let loaded = load_safetensors(&path, &Device::cpu())?;
//! assert_eq!(loaded[0].0, "b");
//! // ... or as a dict, taking each tensor with the shape and dtype expected.
//! let mut dict = StateDict::load(&path, &Device::cpu())?;
//! let w2 = dict.take("w", &[2, 2], DType::F32)?;
//! assert_eq!(w2.to_vec_f32()?, w.to_vec_f32()?);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! f32, f64 and u32 tensors are stored as safetensors `F32`, `F64` and
//! `U32`, little-endian. A malformed, truncated or foreign file is an
//! [`Error::Parse`] naming the file and, where one is at fault, the tensor.
//! Saving writes a temporary file beside the target, syncs it and renames it
//! over the target, so a failed save leaves an earlier file intact.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use safetensors::tensor::{TensorInfo, TensorView};
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::device::Device;
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The header key that safetensors reserves for free-form string metadata.
const METADATA_KEY: &str = "__metadata__";

/// Tensors by name (kept in name order), plus the file's string metadata.
#[derive(Clone, Debug, Default)]
pub struct StateDict {
    tensors: BTreeMap<String, Tensor>,
    metadata: BTreeMap<String, String>,
    /// The file it was read from, for error messages.
    source: Option<String>,
}

impl StateDict {
    /// An empty dict, without metadata.
    pub fn new() -> StateDict {
        StateDict::default()
    }

    /// Adds `tensor` as `name`, returning the tensor it replaces.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) -> Option<Tensor> {
        self.tensors.insert(name.into(), tensor)
    }

    /// The tensor named `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Removes and returns the tensor named `name`, if present (see
    /// [`StateDict::take`] to check its shape and dtype too).
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }

    /// Removes and returns tensor `name`, which must have `shape` and
    /// `dtype`; the error names the file (when loaded from one), the tensor
    /// and what was expected.
    pub fn take(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let found = match self.tensors.get(name) {
            None => return Err(self.error(format!("tensor {name} is missing"))),
            Some(t) => (t.shape().to_vec(), t.dtype()),
        };
        if found.0 != shape {
            return Err(self.error(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                found.0
            )));
        }
        if found.1 != dtype {
            return Err(self.error(format!("tensor {name} is {}, expected {dtype}", found.1)));
        }
        Ok(self.tensors.remove(name).expect("checked above"))
    }

    /// Whether a tensor is named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors (metadata aside).
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// (name, tensor) pairs, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Elements over all tensors.
    pub fn numel(&self) -> usize {
        self.tensors.values().map(Tensor::numel).sum()
    }

    /// The file's `__metadata__` strings.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Sets a `__metadata__` string, saved with the tensors (replacing any
    /// value under `key`).
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// The file this dict was loaded from, if any.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The safetensors bytes of the dict (realizes pending tensors).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut owned = Vec::with_capacity(self.tensors.len());
        for (name, t) in &self.tensors {
            if name == METADATA_KEY {
                return Err(Error::invalid(
                    "state_dict",
                    format!("{METADATA_KEY:?} is reserved by safetensors; not a tensor name"),
                ));
            }
            let (dtype, bytes) = le_bytes(&t.to_host()?);
            owned.push((name, t.shape().to_vec(), dtype, bytes));
        }
        let views = owned
            .iter()
            .map(|(name, shape, dtype, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.as_str(), v))
                    .map_err(|e| Error::Other(format!("state_dict: tensor {name}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let metadata = (!self.metadata.is_empty()).then(|| {
            self.metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>()
        });
        safetensors::serialize(views, metadata)
            .map_err(|e| Error::Other(format!("state_dict: serializing: {e}")))
    }

    /// Parses safetensors bytes onto `device`; `source` names them in errors
    /// (a file name, say).
    pub fn from_bytes(bytes: &[u8], source: &str, device: &Device) -> Result<StateDict> {
        let err = |msg: String| Error::Parse {
            file: source.to_string(),
            line: 0,
            msg,
        };
        let (header_len, meta) =
            SafeTensors::read_metadata(bytes).map_err(|e| err(explain(bytes, e)))?;
        let data = &bytes[8 + header_len..];
        let mut dict = StateDict {
            source: Some(source.to_string()),
            ..StateDict::default()
        };
        if let Some(m) = meta.metadata() {
            dict.metadata = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        for (name, info) in meta.tensors() {
            let (start, end) = info.data_offsets;
            let host = from_le_bytes(info.dtype, &data[start..end]).ok_or_else(|| {
                err(format!(
                    "tensor {name} is {}; deltagrad reads F32, F64 and U32",
                    info.dtype
                ))
            })?;
            let t = Tensor::from_host(host, &info.shape, device)
                .map_err(|e| err(format!("tensor {name}: {e}")))?;
            dict.tensors.insert(name, t);
        }
        Ok(dict)
    }

    /// Writes the dict to `path` as safetensors: a temporary file beside it,
    /// synced, then renamed over it.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads a safetensors file onto `device`.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<StateDict> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        StateDict::from_bytes(&bytes, &path.display().to_string(), device)
    }

    fn error(&self, msg: String) -> Error {
        Error::Parse {
            file: self.source.clone().unwrap_or_else(|| "state dict".into()),
            line: 0,
            msg,
        }
    }
}

impl IntoIterator for StateDict {
    type Item = (String, Tensor);
    type IntoIter = std::collections::btree_map::IntoIter<String, Tensor>;
    fn into_iter(self) -> Self::IntoIter {
        self.tensors.into_iter()
    }
}

/// Saves `tensors` to `path` (see [`StateDict::save`]); names must be
/// distinct.
pub fn save_safetensors<N: AsRef<str>>(
    path: impl AsRef<Path>,
    tensors: &[(N, &Tensor)],
) -> Result<()> {
    let mut dict = StateDict::new();
    for (name, t) in tensors {
        let name = name.as_ref();
        if dict.insert(name, (*t).clone()).is_some() {
            return Err(Error::invalid(
                "save_safetensors",
                format!("tensor name {name:?} appears twice"),
            ));
        }
    }
    dict.save(path)
}

/// Loads every tensor of a safetensors file onto `device`, in name order.
pub fn load_safetensors(path: impl AsRef<Path>, device: &Device) -> Result<Vec<(String, Tensor)>> {
    Ok(StateDict::load(path, device)?.into_iter().collect())
}

fn le_bytes(h: &HostData) -> (Dtype, Vec<u8>) {
    match h {
        HostData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        HostData::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        HostData::U32(v) => (Dtype::U32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    }
}

/// Host values from little-endian bytes whose length the header check has
/// matched to the shape; `None` for a dtype deltagrad has no match for.
fn from_le_bytes(dtype: Dtype, b: &[u8]) -> Option<HostData> {
    Some(match dtype {
        Dtype::F32 => HostData::F32(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        ),
        Dtype::F64 => HostData::F64(
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
        Dtype::U32 => HostData::U32(
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        ),
        _ => return None,
    })
}

/// Why `bytes` are not a safetensors file, naming the tensor at fault
/// where the header can be read.
fn explain(bytes: &[u8], e: SafeTensorError) -> String {
    if bytes.len() < 8 {
        return format!(
            "not a safetensors file: {} bytes, fewer than the 8 of the header length (truncated?)",
            bytes.len()
        );
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let rest = (bytes.len() - 8) as u64;
    if header_len > rest {
        return format!(
            "not a safetensors file: the header length is {header_len} bytes, but only {rest} follow (truncated?)"
        );
    }
    let header = &bytes[8..8 + header_len as usize];
    match tensor_problem(header, rest - header_len) {
        Some(msg) => msg,
        None => format!("not a safetensors file: {e}"),
    }
}

/// The first tensor whose header entry does not fit the data section of
/// `data_len` bytes, as a message; `None` where the header is not JSON or
/// every entry fits.
fn tensor_problem(header: &[u8], data_len: u64) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut infos = Vec::new();
    for (name, v) in map {
        if name == METADATA_KEY {
            continue;
        }
        match serde_json::from_value::<TensorInfo>(v.clone()) {
            Ok(info) => infos.push((name, info)),
            Err(e) => return Some(format!("tensor {name}: bad header entry {v} ({e})")),
        }
    }
    infos.sort_by_key(|(_, info)| info.data_offsets);
    let mut next = 0u64;
    for (name, info) in &infos {
        let (start, end) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
        if end > data_len {
            return Some(format!(
                "tensor {name}: its data (bytes {start}..{end}) runs past the end of the data, which is {data_len} bytes (truncated?)"
            ));
        }
        if start != next || end < start {
            return Some(format!(
                "tensor {name}: data offsets {start}..{end} overlap another tensor or leave a gap after byte {next}"
            ));
        }
        let bytes = info
            .shape
            .iter()
            .try_fold(info.dtype.bitsize() as u64, |n, &d| n.checked_mul(d as u64))
            .map(|bits| bits / 8);
        if bytes != Some(end - start) {
            return Some(format!(
                "tensor {name}: shape {:?} of {} takes {} bytes, but its data offsets span {}",
                info.shape,
                info.dtype,
                bytes.map_or("too many".to_string(), |b| b.to_string()),
                end - start
            ));
        }
        next = end;
    }
    (next < data_len).then(|| {
        format!(
            "{} bytes follow the last tensor's data (a damaged or concatenated file?)",
            data_len - next
        )
    })
}

/// A process-wide counter, so that concurrent saves to one path use
/// different temporary files.
static TEMP_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Writes `bytes` to a temporary sibling of `path`, syncs it, renames it
/// over `path` and syncs the folder; on failure removes the temporary file
/// and leaves `path` as it was.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().ok_or_else(|| {
        Error::invalid("state_dict", format!("{} has no file name", path.display()))
    })?;
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}-{seq}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(format!("writing {}", path.display()), e));
    }
    // Makes the rename itself durable; not every platform can open a
    // folder, and the data is already safe, so a failure here is ignored.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Ok(d) = std::fs::File::open(dir.unwrap_or(Path::new("."))) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_problems_name_the_tensor() {
        let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}}"#;
        let msg = tensor_problem(header, 12).unwrap();
        assert!(
            msg.starts_with("tensor b:") && msg.contains("runs past"),
            "{msg}"
        );
        assert_eq!(tensor_problem(header, 20), None);
        let msg = tensor_problem(header, 24).unwrap();
        assert!(msg.starts_with("4 bytes follow"), "{msg}");
        let gap = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        assert!(
            tensor_problem(gap, 12)
                .unwrap()
                .contains("gap after byte 0")
        );
        let size = br#"{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#;
        assert!(tensor_problem(size, 8).unwrap().contains("takes 16 bytes"));
        let bad = br#"{"a":{"dtype":"F32","shape":"x","data_offsets":[0,8]}}"#;
        assert!(
            tensor_problem(bad, 8)
                .unwrap()
                .starts_with("tensor a: bad header entry")
        );
        assert_eq!(tensor_problem(b"not json", 8), None);
    }
}
