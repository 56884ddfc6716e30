//! Checkpoints: weights as a safetensors state dict (the engine's
//! `deltagrad::state_dict`), everything else (vocabulary, tag set,
//! hyper-parameters, training position) in a JSON file beside them that
//! also records the weights' SHA-256. Both are written atomically
//! (temporary file, fsync, rename), weights first, so a crash never leaves
//! a JSON file that points at missing or half-written weights.

use std::path::{Path, PathBuf};

use deltagrad::state_dict::StateDict;
use deltagrad::{Device, Error, Result};
use serde_json::Value;

use crate::files::{sha256_hex, write_atomic};

pub fn weights_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.safetensors"))
}

pub fn meta_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Writes `weights` and `meta` as `<dir>/<name>.safetensors` and
/// `<dir>/<name>.json`.
pub fn save(dir: &Path, name: &str, weights: &StateDict, mut meta: Value) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let data = weights.to_bytes()?;
    if let Value::Object(m) = &mut meta {
        m.insert("weights_sha256".into(), Value::String(sha256_hex(&data)));
    }
    write_atomic(&weights_path(dir, name), &data)?;
    let json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| Error::Other(format!("serializing checkpoint metadata: {e}")))?;
    write_atomic(&meta_path(dir, name), &json)
}

/// A whole-file error (about binary weights, or a check across the file:
/// no line to point at) as `file: msg`, not `file:0: msg`.
pub fn without_line_zero(e: Error) -> Error {
    match e {
        Error::Parse { file, line: 0, msg } => Error::Other(format!("{file}: {msg}")),
        other => other,
    }
}

/// Reads a checkpoint written by `save` onto `device`, verifying the
/// weights' checksum first.
pub fn load(dir: &Path, name: &str, device: &Device) -> Result<(StateDict, Value)> {
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
    let weights = StateDict::from_bytes(&data, &wp.display().to_string(), device)?;
    Ok((weights, meta))
}
