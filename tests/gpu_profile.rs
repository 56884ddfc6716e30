//! Per-launch GPU timing with timestamp queries: a profiled training step
//! reports one finite time per launch, a warm profiled step allocates
//! nothing, and turning profiling off restores the unprofiled step exactly
//! (same counters as tests/gpu_replay.rs). One test in its own binary: the
//! device, its counters and its profiling switch are process-wide.

mod common;
use common::{NerTrainer, gpu};
use deltagrad::Result;
use deltagrad::backend::wgpu::{WgpuBackend, WgpuOptions};

/// Whether the adapter tests would get offers timestamp queries (asked of
/// a second device, only when profiling reported nothing).
fn adapter_has_timestamps() -> bool {
    WgpuBackend::with_options(WgpuOptions::software_ok()).is_ok_and(|b| b.has_timestamps())
}

#[test]
fn profiled_step_times_every_launch() -> Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let backend = gpu.backend();
    let mut trainer = NerTrainer::new(&gpu, 12, 11)?;
    let mut step = || trainer.step(16);
    for _ in 0..6 {
        step()?;
    }
    gpu.sync()?;
    assert_eq!(backend.kernel_times(), None, "nothing profiled yet");

    backend.set_profiling(true);
    step()?;
    let Some(times) = backend.kernel_times() else {
        backend.set_profiling(false);
        assert!(
            !adapter_has_timestamps(),
            "the adapter has timestamp queries but the profiled step reported nothing"
        );
        // Quietly unprofiled is the documented behaviour, even where a GPU
        // is required.
        eprintln!("skipping: the adapter has no timestamp queries");
        return Ok(());
    };
    assert_eq!(times.len(), 11, "one entry per launch: {times:?}");
    for (label, ms) in &times {
        assert!(ms.is_finite() && *ms >= 0.0, "{label}: {ms}");
        assert!(!label.is_empty());
    }
    assert!(
        times.iter().any(|(l, _)| l.starts_with("matmul ")),
        "{times:?}"
    );
    // Each matmul's label names its variant and how it was chosen (the
    // tests' device uses the fixed heuristic).
    for (l, _) in times.iter().filter(|(l, _)| l.starts_with("matmul ")) {
        assert!(l.contains("/k") && l.contains("(heuristic)]"), "{l}");
    }
    let total: f64 = times.iter().map(|(_, ms)| ms).sum();
    assert!(total > 0.0, "a training step takes GPU time: {times:?}");

    // Warm profiled steps reuse their query set and read-back buffers.
    let before = backend.counters();
    for _ in 0..2 {
        step()?;
    }
    let after = backend.counters();
    assert_eq!(
        (after.buffers_created, after.pipelines_created),
        (before.buffers_created, before.pipelines_created),
        "{before:?} → {after:?}"
    );
    assert_eq!(after.bind_groups_created, before.bind_groups_created);
    let profiled = backend.kernel_times();
    assert_eq!(profiled.as_ref().map(Vec::len), Some(11));

    // Off again: the step is the unprofiled one, and the profile stays.
    backend.set_profiling(false);
    step()?;
    gpu.sync()?;
    let before = backend.counters();
    for _ in 0..4 {
        step()?;
    }
    gpu.sync()?;
    let after = backend.counters();
    assert_eq!(after.buffers_created, before.buffers_created);
    assert_eq!(after.pipelines_created, before.pipelines_created);
    assert_eq!(after.bind_groups_created, before.bind_groups_created);
    assert_eq!(after.submissions - before.submissions, 4, "one per step");
    assert_eq!(after.launches - before.launches, 4 * 11);
    assert_eq!(backend.kernel_times(), profiled, "unprofiled steps keep it");
    Ok(())
}
