//! A warmed-up GPU training step allocates nothing, creates no pipeline or
//! bind group, and submits once. Alone in its own test binary: the device's
//! counters are process-wide, and other tests would move them.

mod common;
use common::{NerTrainer, gpu};
use deltagrad::Result;

#[test]
fn warmed_up_gpu_step_allocates_nothing_and_submits_once() -> Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let mut trainer = NerTrainer::new(&gpu, 12, 11)?;
    let mut step = || trainer.step(16);
    for _ in 0..6 {
        step()?;
    }
    gpu.sync()?;
    // Dispatches as the backend records them, for one warm step.
    let one = gpu.backend().counters().dispatches;
    step()?;
    gpu.sync()?;
    let per_step = gpu.backend().counters().dispatches - one;
    assert!(per_step >= 11, "{per_step} dispatches for 11 launches");
    let before = gpu.backend().counters();
    for _ in 0..4 {
        step()?;
    }
    gpu.sync()?;
    let after = gpu.backend().counters();
    assert_eq!(
        after.buffers_created, before.buffers_created,
        "{before:?} → {after:?}"
    );
    assert_eq!(
        after.pipelines_created, before.pipelines_created,
        "{before:?} → {after:?}"
    );
    assert_eq!(
        after.bind_groups_created, before.bind_groups_created,
        "{before:?} → {after:?}"
    );
    assert_eq!(
        after.submissions - before.submissions,
        4,
        "one submission per step"
    );
    assert_eq!(
        after.launches - before.launches,
        4 * 11,
        "eleven launches per step"
    );
    assert_eq!(
        after.dispatches - before.dispatches,
        4 * per_step,
        "the same dispatches each step"
    );
    Ok(())
}
