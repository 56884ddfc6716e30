//! Command recording: bind groups, and one encoder per plan execution with
//! consecutive dispatches sharing a compute pass.

use std::sync::atomic::Ordering;

use super::buffer::Raw;
use super::ctx::Ctx;
use super::pipelines::Pipeline;
use crate::error::{Error, Result};

pub(super) fn bind_group(
    cx: &Ctx,
    pipe: &Pipeline,
    raws: &[Option<&Raw>],
    params: Option<&Raw>,
    (offset, size): (u64, u64),
) -> Result<wgpu::BindGroup> {
    let mut entries = Vec::with_capacity(raws.len());
    for (i, r) in raws.iter().enumerate() {
        let binding = match r {
            Some(r) => wgpu::BufferBinding {
                buffer: &r.buffer,
                offset: 0,
                size: None,
            },
            None => {
                let p = params.ok_or_else(|| Error::Gpu("launch parameters missing".into()))?;
                wgpu::BufferBinding {
                    buffer: &p.buffer,
                    offset,
                    size: wgpu::BufferSize::new(size),
                }
            }
        };
        entries.push(wgpu::BindGroupEntry {
            binding: i as u32,
            resource: wgpu::BindingResource::Buffer(binding),
        });
    }
    let bg = cx.gpu.scoped("creating a bind group", || {
        cx.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipe.layout,
            entries: &entries,
        })
    })?;
    cx.stats.bind_groups_created.fetch_add(1, Ordering::Relaxed);
    Ok(bg)
}

/// One encoder and at most one open compute pass; consecutive dispatches
/// share the pass (wgpu orders dispatches within a pass).
pub(super) struct Recorder<'a> {
    cx: &'a Ctx,
    enc: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
}

impl<'a> Recorder<'a> {
    pub(super) fn new(cx: &'a Ctx) -> Self {
        Recorder {
            cx,
            enc: None,
            pass: None,
        }
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.enc.get_or_insert_with(|| {
            self.cx
                .gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("plan"),
                })
        })
    }

    pub(super) fn copy(&mut self, src: &Raw, dst: &Raw) {
        self.pass = None;
        let size = src.size.min(dst.size);
        self.encoder()
            .copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, size);
    }

    pub(super) fn dispatch(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        bg: &wgpu::BindGroup,
        g: [u32; 3],
    ) {
        if self.pass.is_none() {
            let pass = self
                .encoder()
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                })
                .forget_lifetime();
            self.pass = Some(pass);
        }
        if let Some(p) = self.pass.as_mut() {
            p.set_pipeline(pipeline);
            p.set_bind_group(0, bg, &[]);
            p.dispatch_workgroups(g[0], g[1], g[2]);
        }
    }

    /// A dispatch in a pass of its own, stamped into `set` at `first`
    /// (start) and `first + 1` (end). Only for profiling: splitting passes
    /// costs a little on real GPUs.
    pub(super) fn dispatch_timed(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        bg: &wgpu::BindGroup,
        g: [u32; 3],
        (set, first): (&wgpu::QuerySet, u32),
    ) {
        self.pass = None;
        let mut pass = self
            .encoder()
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(first),
                    end_of_pass_write_index: Some(first + 1),
                }),
            });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bg, &[]);
        pass.dispatch_workgroups(g[0], g[1], g[2]);
    }

    /// Resolves the first `count` queries of `set` into `dst`.
    pub(super) fn resolve(&mut self, set: &wgpu::QuerySet, count: u32, dst: &wgpu::Buffer) {
        self.pass = None;
        self.encoder().resolve_query_set(set, 0..count, dst, 0);
    }

    pub(super) fn flush(&mut self) {
        self.pass = None;
        if let Some(enc) = self.enc.take() {
            self.cx.submit(enc);
        }
    }
}
