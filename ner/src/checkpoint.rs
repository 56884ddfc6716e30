//! Checkpoints: weights in safetensors, everything else (vocabulary, tag
//! set, hyper-parameters, training position) in a JSON file beside them that
//! also records the weights' SHA-256. Both are written atomically (temporary
//! file, fsync, rename), weights first, so a crash never leaves a JSON file
//! that points at missing or half-written weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::Value;

use super::fetch::{sha256_hex, write_atomic};
use deltagrad::Tensor;
use deltagrad::{Error, Result};

/// A tensor read back from a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

pub fn weights_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.safetensors"))
}

pub fn meta_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Writes `tensors` and `meta` as `<dir>/<name>.safetensors` and
/// `<dir>/<name>.json`.
pub fn save(dir: &Path, name: &str, tensors: &[(String, Tensor)], mut meta: Value) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut bytes: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (n, t) in tensors {
        let v = t.to_vec_f32()?;
        bytes.push((
            n.clone(),
            t.shape().to_vec(),
            bytemuck::cast_slice(&v).to_vec(),
        ));
    }
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Other(format!("checkpoint tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let data = safetensors::serialize(views, None)
        .map_err(|e| Error::Other(format!("serializing checkpoint: {e}")))?;
    if let Value::Object(m) = &mut meta {
        m.insert("weights_sha256".into(), Value::String(sha256_hex(&data)));
    }
    write_atomic(&weights_path(dir, name), &data)?;
    let json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| Error::Other(format!("serializing checkpoint metadata: {e}")))?;
    write_atomic(&meta_path(dir, name), &json)
}

/// Reads a checkpoint written by `save`, verifying the weights' checksum.
pub fn load(dir: &Path, name: &str) -> Result<(HashMap<String, Stored>, Value)> {
    let mp = meta_path(dir, name);
    let wp = weights_path(dir, name);
    let meta_bytes =
        std::fs::read(&mp).map_err(|e| Error::io(format!("reading {}", mp.display()), e))?;
    let meta: Value = serde_json::from_slice(&meta_bytes).map_err(|e| Error::Parse {
        file: mp.display().to_string(),
        line: e.line(),
        msg: format!("invalid checkpoint metadata: {e}"),
    })?;
    let data = std::fs::read(&wp).map_err(|e| Error::io(format!("reading {}", wp.display()), e))?;
    let want = meta
        .get("weights_sha256")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Parse {
            file: mp.display().to_string(),
            line: 1,
            msg: "no weights_sha256 field".into(),
        })?;
    let got = sha256_hex(&data);
    if got != want {
        return Err(Error::Parse {
            file: wp.display().to_string(),
            line: 0,
            msg: format!(
                "checksum mismatch: file has sha256 {got}, metadata expects {want} (truncated or modified)"
            ),
        });
    }
    let st = SafeTensors::deserialize(&data).map_err(|e| Error::Parse {
        file: wp.display().to_string(),
        line: 0,
        msg: format!("not a safetensors file: {e}"),
    })?;
    let mut out = HashMap::new();
    for n in st.names() {
        let v = st.tensor(n).map_err(|e| Error::Parse {
            file: wp.display().to_string(),
            line: 0,
            msg: format!("tensor {n}: {e}"),
        })?;
        if v.dtype() != Dtype::F32 {
            return Err(Error::Parse {
                file: wp.display().to_string(),
                line: 0,
                msg: format!("tensor {n}: expected F32, found {:?}", v.dtype()),
            });
        }
        let values: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(
            n.to_string(),
            Stored {
                shape: v.shape().to_vec(),
                values,
            },
        );
    }
    Ok((out, meta))
}

/// Takes tensor `name` from a loaded checkpoint, checking its shape.
pub fn take(
    stored: &mut HashMap<String, Stored>,
    file: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Stored> {
    let s = stored.remove(name).ok_or_else(|| Error::Parse {
        file: file.display().to_string(),
        line: 0,
        msg: format!("tensor {name} is missing"),
    })?;
    if s.shape != shape {
        return Err(Error::Parse {
            file: file.display().to_string(),
            line: 0,
            msg: format!(
                "tensor {name} has shape {:?}, the config implies {shape:?}",
                s.shape
            ),
        });
    }
    Ok(s)
}
