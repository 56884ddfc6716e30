//! End to end: a window classifier learns a tiny inline corpus; the CPU
//! backend trains to the same bits at any thread count and allocates no
//! buffer once warmed up.

use std::collections::HashMap;

use deltagrad::model::{Activation, Batch, WindowNet, WindowNetConfig, random_batch};
use deltagrad::schedule::with_fusion;
use deltagrad::{DType, Device, HostData, Result, Sgd, Tensor};

/// "Is the centre word a location?" as a 3-class problem (O, PER, LOC).
const CORPUS: &[(&str, &str)] = &[
    ("alice lives in paris", "PER O O LOC"),
    ("bob went to london yesterday", "PER O O LOC O"),
    ("in rome carol met dave", "O LOC PER O PER"),
    ("erin flew to berlin", "PER O O LOC"),
    ("frank stayed in madrid with grace", "PER O O LOC O PER"),
    ("the museum in vienna hired heidi", "O O O LOC O PER"),
    ("ivan visited oslo and lisbon", "PER O LOC O LOC"),
    ("judy said prague is cold", "PER O LOC O O"),
];

fn windows() -> (Vec<u32>, Vec<u32>, usize) {
    let mut vocab: HashMap<&str, u32> = HashMap::from([("<pad>", 0)]);
    let tag_id = |t: &str| match t {
        "O" => 0,
        "PER" => 1,
        _ => 2,
    };
    let (mut words, mut labels) = (Vec::new(), Vec::new());
    for (text, tags) in CORPUS {
        let toks: Vec<&str> = text.split(' ').collect();
        let ids: Vec<u32> = toks
            .iter()
            .map(|w| {
                let n = vocab.len() as u32;
                *vocab.entry(w).or_insert(n)
            })
            .collect();
        for (i, t) in tags.split(' ').enumerate() {
            for off in -2i64..=2 {
                let j = i as i64 + off;
                words.push(if j < 0 || j >= ids.len() as i64 {
                    0
                } else {
                    ids[j as usize]
                });
            }
            labels.push(tag_id(t));
        }
    }
    (words, labels, vocab.len())
}

#[test]
fn window_classifier_learns_tiny_corpus() -> Result<()> {
    let (words, labels, vocab) = windows();
    let n = labels.len();
    let device = Device::cpu();
    let cfg = WindowNetConfig {
        vocab,
        dim: 8,
        window: 5,
        cap_classes: 0,
        cap_dim: 0,
        hidden: vec![16],
        classes: 3,
        activation: Activation::Tanh,
        features: vec![],
    };
    let mut rng = Tensor::rng(7);
    let net = WindowNet::new(cfg, DType::F32, &device, &mut rng)?;
    let mut sgd = Sgd::new(net.params(), 0.5);
    let batch = Batch {
        words: Tensor::ids(words, &[n * 5], &device)?,
        caps: None,
        features: vec![],
        labels: Tensor::ids(labels.clone(), &[n], &device)?,
        size: n,
    };
    let mut first = None;
    let mut last = f64::NAN;
    for _ in 0..300 {
        let loss = net.loss(&batch, None)?;
        loss.backward()?;
        sgd.step_with(&[&loss])?;
        last = loss.item()?;
        first.get_or_insert(last);
    }
    let first = first.unwrap();
    // Three balanced-ish classes start near ln 3 ≈ 1.1; a fitted model is
    // far below 0.05.
    assert!(first > 0.7, "initial loss {first}");
    assert!(
        last < 0.05,
        "training loss only fell from {first} to {last}"
    );
    // And it classifies every training window correctly.
    let logits = net.logits(&batch, None)?.to_vec_f32()?;
    for (i, y) in labels.iter().enumerate() {
        let row = &logits[i * 3..i * 3 + 3];
        let arg = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        assert_eq!(arg as u32, *y, "window {i}");
    }
    Ok(())
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| (((i as u64 + 1) * 2654435761 + seed * 97) % 2000) as f64 / 1000.0 - 1.0)
        .collect()
}

fn input(shape: &[usize], dtype: DType, seed: u64, d: &Device) -> Result<Tensor> {
    let v = values(shape.iter().product(), seed);
    Ok(Tensor::from_host(HostData::from_f64(&v, dtype), shape, d)?.requires_grad())
}

/// Each op at sizes above the CPU backend's thresholds for splitting work
/// (matmuls by rows and by columns, every transpose, element-wise work
/// with broadcasting, reductions along each axis and over long axes,
/// concatenation, the fused loss, gather),
/// forward and backward: every value and gradient, as bits.
fn op_results(d: &Device, dtype: DType) -> Result<Vec<HostData>> {
    let mut out = Vec::new();
    // 32×275×300: a short, wide product summed as two halves of K.
    for (m, k, n) in [
        (301, 257, 67),
        (67, 257, 301),
        (40, 1100, 33),
        (32, 275, 300),
    ] {
        let a = input(&[m, k], dtype, 1, d)?;
        let b = input(&[k, n], dtype, 2, d)?;
        let at = input(&[k, m], dtype, 3, d)?;
        let bt = input(&[n, k], dtype, 4, d)?;
        let bias = input(&[n], dtype, 5, d)?;
        let y = a.matmul(&b)?.add(&bias)?.tanh()?;
        let yt = at.transpose()?.matmul(&bt.transpose()?)?;
        y.mul(&yt)?.sum()?.backward()?;
        out.extend([y.to_host()?, yt.to_host()?]);
        for t in [&a, &b, &at, &bt, &bias] {
            out.push(t.grad().expect("a gradient").to_host()?);
        }
    }
    let x = input(&[700, 130], dtype, 6, d)?;
    let r = x.sum_axis(0)?.sum()?.add(&x.max_axis(1)?.sum()?)?;
    r.add(&x.log_softmax_axis(1)?.sum()?)?.backward()?;
    out.extend([r.to_host()?, x.grad().expect("a gradient").to_host()?]);
    // Long axes to few outputs: the reductions cut into fixed blocks.
    let z = input(&[3, 20_000], dtype, 8, d)?;
    let r = z.sum_axis(1)?.mul(&z.max_axis(1)?)?.sum()?.add(&z.sum()?)?;
    r.backward()?;
    out.extend([r.to_host()?, z.grad().expect("a gradient").to_host()?]);
    // Concatenation: zero padding of each piece, split by rows, summed.
    let (p, q) = (
        input(&[900, 37], dtype, 9, d)?,
        input(&[900, 60], dtype, 10, d)?,
    );
    let c = Tensor::concat(&[&p, &q, &p], 1)?;
    c.mul(&c)?.sum()?.backward()?;
    out.extend([c.to_host()?, p.grad().expect("a gradient").to_host()?]);
    let logits = input(&[5000, 9], dtype, 7, d)?;
    let labels: Vec<u32> = (0..5000).map(|i| (i * 7 % 9) as u32).collect();
    let loss = logits.softmax_cross_entropy(&Tensor::ids(labels, &[5000], d)?)?;
    loss.backward()?;
    out.extend([
        loss.to_host()?,
        logits.grad().expect("a gradient").to_host()?,
    ]);
    Ok(out)
}

/// A window-NER model big enough that every step splits its work, trained
/// for a few SGD steps: the losses and the final parameters.
fn training_results(d: &Device) -> Result<(Vec<f64>, Vec<HostData>)> {
    let cfg = WindowNetConfig {
        vocab: 3000,
        dim: 50,
        window: 5,
        cap_classes: 0,
        cap_dim: 0,
        hidden: vec![160],
        classes: 9,
        activation: Activation::Tanh,
        features: vec![],
    };
    let mut rng = Tensor::rng(3);
    let net = WindowNet::new(cfg.clone(), DType::F32, d, &mut rng)?;
    let mut sgd = Sgd::new(net.params(), 0.1);
    let mut losses = Vec::new();
    // Batches of 512, then of 32, whose first layer (32×250×160) sums two
    // halves of K.
    for batch in [512, 512, 512, 32, 32, 32] {
        let b = random_batch(&cfg, batch, d, &mut rng)?;
        let loss = net.loss(&b, None)?;
        loss.backward()?;
        sgd.step_with(&[&loss])?;
        losses.push(loss.item()?);
    }
    let params = net
        .params()
        .iter()
        .map(|p| p.to_host())
        .collect::<Result<_>>()?;
    Ok((losses, params))
}

#[test]
fn cpu_results_are_bit_identical_at_any_thread_count() -> Result<()> {
    let one = Device::cpu_with_threads(1)?;
    let reference = (
        op_results(&one, DType::F32)?,
        op_results(&one, DType::F64)?,
        training_results(&one)?,
    );
    for threads in [2, 3] {
        let d = Device::cpu_with_threads(threads)?;
        // HostData compares floats by value; compare bits, so that -0.0
        // against 0.0 or a different NaN would count.
        let bits = |v: &[HostData]| {
            v.iter()
                .map(|h| h.to_f64().iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert!(
            bits(&op_results(&d, DType::F32)?) == bits(&reference.0),
            "f32 ops differ at {threads} threads"
        );
        assert!(
            bits(&op_results(&d, DType::F64)?) == bits(&reference.1),
            "f64 ops differ at {threads} threads"
        );
        let (losses, params) = training_results(&d)?;
        assert_eq!(
            losses.iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
            reference
                .2
                .0
                .iter()
                .map(|l| l.to_bits())
                .collect::<Vec<_>>(),
            "losses at {threads} threads"
        );
        assert!(
            bits(&params) == bits(&reference.2.1),
            "parameters at {threads} threads"
        );
    }
    assert!(Device::cpu_with_threads(0).is_err());
    Ok(())
}

/// A tanh window net on `d`, and a closure that runs one SGD step of it on
/// a fresh random batch of `batch` windows and returns the loss.
fn sgd_steps(d: &Device, batch: usize, seed: u64) -> Result<impl FnMut() -> Result<f64>> {
    let cfg = WindowNetConfig {
        vocab: 500,
        dim: 10,
        window: 5,
        cap_classes: 0,
        cap_dim: 0,
        hidden: vec![64],
        classes: 5,
        activation: Activation::Tanh,
        features: vec![],
    };
    let mut rng = Tensor::rng(seed);
    let net = WindowNet::new(cfg.clone(), DType::F32, d, &mut rng)?;
    let mut sgd = Sgd::new(net.params(), 0.1);
    let d = d.clone();
    Ok(move || {
        let b = random_batch(&cfg, batch, &d, &mut rng)?;
        let loss = net.loss(&b, None)?;
        loss.backward()?;
        sgd.step_with(&[&loss])?;
        loss.item()
    })
}

/// W after two SGD steps on `sum((x·W) ⊙ t)`, whose gradient is xᵀ·t:
/// with fusion, the update W − η·xᵀ·t is the epilogue of the gradient's
/// product, which the CPU backend applies in the GEMM's tiles (f32) or
/// over its rows (f64).
fn updated_weight(
    d: &Device,
    (m, k, n): (usize, usize, usize),
    dtype: DType,
    fuse: bool,
) -> Result<HostData> {
    let w = input(&[m, n], dtype, 7, d)?;
    let mut sgd = Sgd::new(vec![w.clone()], 0.05);
    for step in 0..2 {
        let x = input(&[k, m], dtype, 8 + step, d)?;
        let t = input(&[k, n], dtype, 10 + step, d)?;
        with_fusion(fuse, || -> Result<()> {
            let loss = x.matmul(&w)?.mul(&t)?.sum()?;
            loss.backward()?;
            sgd.step_with(&[&loss])
        })?;
    }
    w.to_host()
}

fn bits(h: &HostData) -> Vec<u64> {
    h.to_f64().iter().map(|x| x.to_bits()).collect()
}

#[test]
fn sgd_update_fused_into_its_gradient_matches_separate_launches_bit_for_bit() -> Result<()> {
    // W's gradient split by rows (275×32×300), by columns (40×64×600, at
    // more than one thread), and on one thread (12×20×70).
    for dtype in [DType::F32, DType::F64] {
        for shape in [(275, 32, 300), (40, 64, 600), (12, 20, 70)] {
            let want = updated_weight(&Device::cpu(), shape, dtype, false)?;
            for threads in [1, 2, 3] {
                let d = Device::cpu_with_threads(threads)?;
                let got = updated_weight(&d, shape, dtype, true)?;
                assert!(
                    bits(&got) == bits(&want),
                    "{dtype:?} {shape:?} at {threads} threads: fused update differs"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn warmed_up_cpu_step_allocates_no_buffer() -> Result<()> {
    // A device of its own: its counters move only with this test.
    let d = Device::cpu_with_threads(2)?;
    let mut step = sgd_steps(&d, 256, 5)?;
    for _ in 0..3 {
        step()?;
    }
    let before = d.backend().counters();
    for _ in 0..5 {
        step()?;
    }
    let after = d.backend().counters();
    assert!(after.launches > before.launches, "{before:?} → {after:?}");
    assert_eq!(
        after.buffers_created, before.buffers_created,
        "{before:?} → {after:?}"
    );
    Ok(())
}

#[test]
fn profiled_cpu_step_times_every_launch() -> Result<()> {
    // A device of its own, so no other test's launches land in its profile.
    let d = Device::cpu_with_threads(2)?;
    let mut step = sgd_steps(&d, 64, 9)?;
    step()?;
    assert!(d.backend().kernel_times().is_none(), "profiled while off");
    d.backend().set_profiling(true);
    let before = d.backend().counters().launches;
    step()?;
    let launched = d.backend().counters().launches - before;
    d.backend().set_profiling(false);
    let times = d
        .backend()
        .kernel_times()
        .expect("a profile after a profiled step");
    // The step is one plan, so its profile is every launch of the step.
    assert_eq!(times.len() as u64, launched, "{times:?}");
    let products = times
        .iter()
        .filter(|(l, _)| l.starts_with("matmul "))
        .count();
    assert!(products >= 4, "{times:?}");
    assert!(
        times.iter().all(|(_, ms)| ms.is_finite() && *ms >= 0.0),
        "{times:?}"
    );
    assert!(times.iter().any(|(_, ms)| *ms > 0.0), "{times:?}");
    // Turning profiling on again forgets the old profile.
    d.backend().set_profiling(true);
    assert!(d.backend().kernel_times().is_none());
    d.backend().set_profiling(false);
    Ok(())
}
