//! The device, pools and counters every part of the backend shares, and
//! reading a buffer back to the host.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::buffer::{Pool, Raw, Stats};
use super::device::Gpu;
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};

/// Device, pools and counters, shared by the backend's operations.
pub(super) struct Ctx {
    pub(super) gpu: Gpu,
    pub(super) pool: Arc<Pool>,
    pub(super) staging: Arc<Pool>,
    pub(super) stats: Arc<Stats>,
    pub(super) last: Mutex<Option<wgpu::SubmissionIndex>>,
}

impl Ctx {
    pub(super) fn submit(&self, enc: wgpu::CommandEncoder) -> wgpu::SubmissionIndex {
        let idx = self.gpu.queue.submit([enc.finish()]);
        self.stats.submissions.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last) = Some(idx.clone());
        idx
    }

    /// Copies the first `bytes` of `raw` to the host, waiting for the work
    /// submitted before (queue order makes the copy see it).
    pub(super) fn read_raw(&self, raw: &Raw, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.staging.acquire(&self.gpu, bytes, None)?;
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("download"),
            });
        enc.copy_buffer_to_buffer(&raw.buffer, 0, &staging.buffer, 0, bytes);
        let idx = self.submit(enc);
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .buffer
            .map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
                let _ = tx.send(r);
            });
        // On a timeout the staging buffer is dropped, not pooled: its map
        // may still complete later.
        self.gpu.wait(Some(idx))?;
        // Another thread's poll may be running the callback right now;
        // the submission is done, so it arrives promptly.
        match rx.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Gpu(format!("mapping a download buffer: {e}"))),
            Err(_) => {
                return Err(Error::Gpu(
                    "download buffer was not mapped after waiting".into(),
                ));
            }
        }
        let data = {
            let view = staging
                .buffer
                .get_mapped_range(0..bytes)
                .map_err(|e| Error::Gpu(format!("reading a download buffer: {e}")))?;
            view.to_vec()
        };
        staging.buffer.unmap();
        self.staging.release(staging);
        Ok(data)
    }
}

pub(super) use crate::error::lock;

pub(super) fn f64_unsupported() -> Error {
    Error::Gpu("f64 is not supported on the wgpu backend (WGSL has no portable f64); use f32 or the CPU backend".into())
}

/// Little-endian bytes read back from the device as `dtype` values.
pub(super) fn host_data(bytes: &[u8], dtype: DType) -> Result<HostData> {
    let words = bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
    Ok(match dtype {
        DType::F32 => HostData::F32(words.map(f32::from_le_bytes).collect()),
        DType::U32 => HostData::U32(words.map(u32::from_le_bytes).collect()),
        DType::F64 => return Err(f64_unsupported()),
    })
}
