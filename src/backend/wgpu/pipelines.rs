//! The pipeline cache: one compute pipeline per `KernelId`, with an
//! explicit bind group layout built from `KernelId::bindings` (an automatic
//! layout would drop bindings an entry point does not use).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::buffer::Stats;
use super::device::Gpu;
use super::kernels::{Binding, KernelId};
use crate::error::{Error, Result};

#[derive(Clone)]
pub(super) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// Unique per build: bind groups made for an evicted and rebuilt
    /// pipeline's layout are not reused with the new one.
    pub uid: u64,
}

/// Pipelines by kernel id, least recently used dropped beyond `capacity`.
pub(super) struct Pipelines {
    map: HashMap<KernelId, (Pipeline, u64)>,
    tick: u64,
    built: u64,
    capacity: usize,
}

impl Pipelines {
    pub fn new(capacity: usize) -> Pipelines {
        Pipelines {
            map: HashMap::new(),
            tick: 0,
            built: 0,
            capacity: capacity.max(1),
        }
    }

    pub fn get(&mut self, gpu: &Gpu, stats: &Stats, id: &KernelId) -> Result<Pipeline> {
        self.tick += 1;
        if let Some((p, used)) = self.map.get_mut(id) {
            *used = self.tick;
            return Ok(p.clone());
        }
        self.built += 1;
        let p = build(gpu, id, self.built)?;
        stats.pipelines_created.fetch_add(1, Ordering::Relaxed);
        if self.map.len() >= self.capacity
            && let Some(old) = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            self.map.remove(&old);
        }
        self.map.insert(id.clone(), (p.clone(), self.tick));
        stats
            .pipelines_live
            .store(self.map.len() as u64, Ordering::Relaxed);
        Ok(p)
    }
}

fn build(gpu: &Gpu, id: &KernelId, uid: u64) -> Result<Pipeline> {
    if id.uses_subgroups() && !gpu.subgroups {
        return Err(Error::Gpu(format!(
            "{} uses subgroup operations, which the device was not created with",
            id.module_name()
        )));
    }
    let source = id.source()?;
    let bindings = id.bindings();
    let storage = bindings.iter().filter(|b| **b != Binding::Uniform).count() as u32;
    if storage > gpu.limits.max_storage_buffers_per_shader_stage {
        return Err(Error::Gpu(format!(
            "{} needs {storage} storage buffers; the adapter allows {} per stage",
            id.module_name(),
            gpu.limits.max_storage_buffers_per_shader_stage
        )));
    }
    let entries = layout_entries(&bindings);
    let what = format!(
        "building pipeline {}::{}",
        id.module_name(),
        id.entry_point()
    );
    gpu.scoped(&what, || {
        let module = shader_module(gpu, id, source);
        let layout = gpu
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(id.module_name()),
                entries: &entries,
            });
        let pl = gpu
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(id.module_name()),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let overrides = id.overrides();
        let pipeline = gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(id.entry_point()),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(id.entry_point()),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &overrides,
                    // Every shader writes workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        Pipeline {
            pipeline,
            layout,
            uid,
        }
    })
}

/// The bind group layout entries of `bindings`, numbered in order.
fn layout_entries(bindings: &[Binding]) -> Vec<wgpu::BindGroupLayoutEntry> {
    bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: match b {
                    Binding::Uniform => wgpu::BufferBindingType::Uniform,
                    Binding::Read => wgpu::BufferBindingType::Storage { read_only: true },
                    Binding::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect()
}

/// The kernel's shader module: trusted (no runtime bounds checks) where
/// the device allows it and the kernel is proven in bounds.
fn shader_module(gpu: &Gpu, id: &KernelId, source: String) -> wgpu::ShaderModule {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(id.module_name()),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    };
    if gpu.trusted_shaders && id.trusted() {
        // No runtime bounds checks: every index of a trusted kernel is
        // bounded by the sizes `compile` checked against the slots the
        // launch binds (tests/wgpu_plan.rs runs each at odd sizes with
        // poisoned padding). Every loop has a bounded trip count.
        // Integer division checks stay on.
        let checks = wgpu::ShaderRuntimeChecks {
            bounds_checks: false,
            force_loop_bounding: false,
            ..wgpu::ShaderRuntimeChecks::checked()
        };
        // SAFETY: see above; the kernel ids that may not be trusted
        // (indices read from buffers) are excluded by `trusted()`.
        unsafe { gpu.device.create_shader_module_trusted(desc, checks) }
    } else {
        gpu.device.create_shader_module(desc)
    }
}
