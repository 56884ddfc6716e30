//! A warmed-up GPU training step allocates nothing, creates no pipeline or
//! bind group, and submits once. Alone in its own test binary: the device's
//! counters are process-wide, and other tests would move them.

mod common;
use common::{gpu, ner_config};
use deltagrad::model::{WindowNet, random_batch};
use deltagrad::{DType, Result, Sgd, Tensor};

#[test]
fn warmed_up_gpu_step_allocates_nothing_and_submits_once() -> Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let cfg = ner_config(12);
    let mut rng = Tensor::rng(11);
    let net = WindowNet::new(cfg.clone(), DType::F32, &gpu, &mut rng)?;
    let mut sgd = Sgd::new(net.params(), 0.1);
    let mut step = |rng: &mut rand::rngs::StdRng| -> Result<()> {
        let batch = random_batch(&cfg, 16, &gpu, rng)?;
        let loss = net.loss(&batch, None)?;
        loss.backward()?;
        sgd.step_with(&[&loss])
    };
    for _ in 0..6 {
        step(&mut rng)?;
    }
    gpu.sync()?;
    let before = gpu.backend().counters();
    for _ in 0..4 {
        step(&mut rng)?;
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
        4 * 14,
        "fourteen launches per step"
    );
    Ok(())
}
