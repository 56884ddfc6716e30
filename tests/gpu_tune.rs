//! The matmul tuner on the adapter (lavapipe in CI): it times candidate
//! variants on first use of a shape class, keeps the fastest in memory and
//! in the on-disk cache, a new backend (a new process) reads it back, a
//! corrupt cache file is ignored, and `explain` and the profile labels
//! report the choice. Caches go to a temporary folder, never the home
//! directory.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deltagrad::backend::wgpu::tune::How;
use deltagrad::backend::wgpu::{MatmulShape, MatmulVariant, Tuning, WgpuBackend, WgpuOptions};
use deltagrad::model::{WindowNet, random_batch};
use deltagrad::schedule::explain::explain_on;
use deltagrad::{DType, Device, DeviceKind, HostData, Sgd, Tensor, plan_for};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("deltagrad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tuned(dir: &Path) -> Option<WgpuBackend> {
    WgpuBackend::with_options(WgpuOptions {
        tuning: Tuning::Auto,
        tune_cache: Some(dir.to_path_buf()),
        tune_budget: Duration::from_millis(60),
        ..WgpuOptions::software_ok()
    })
    .map_err(common::no_gpu)
    .ok()
}

/// ∂W = xᵀδ of a small step: tall K, A transposed.
const SHAPE: MatmulShape = MatmulShape {
    m: 40,
    k: 600,
    n: 12,
    trans_a: true,
    trans_b: false,
};

fn product(d: &Device, shape: &MatmulShape) -> Vec<f32> {
    let mk = |rows: usize, cols: usize, seed: u64| {
        let mut rng = Tensor::rng(seed);
        Tensor::randn(&[rows, cols], 1.0, DType::F32, d, &mut rng).unwrap()
    };
    let a = mk(shape.k, shape.m, 1).transpose().unwrap();
    let b = mk(shape.k, shape.n, 2);
    a.matmul(&b).unwrap().to_vec_f32().unwrap()
}

#[test]
fn tuned_choices_are_kept_in_memory_and_on_disk() {
    let dir = scratch("tune-cache");
    let Some(a) = tuned(&dir) else { return };
    let first = a.matmul_choice(&SHAPE);
    let How::Tuned { candidates, ms } = first.how else {
        panic!("not tuned: {first:?}");
    };
    assert!(candidates >= 1 && ms > 0.0, "{first:?}");
    assert_eq!(a.tuning_stats().1, 1);
    // Another shape of the same class: the choice in memory.
    let same_class = MatmulShape {
        m: 33,
        k: 1000,
        n: 9,
        ..SHAPE
    };
    assert_eq!(a.matmul_choice(&same_class), first);
    assert_eq!(a.tuning_stats().1, 1);

    // One file for this adapter, naming the class and the variant.
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains(&SHAPE.class()), "{text}");
    assert!(text.contains(&first.variant.to_string()), "{text}");

    // A new backend (as a new process would) reads the choice back, and
    // computes the same bits with it.
    let Some(b) = tuned(&dir) else { return };
    let again = b.matmul_choice(&SHAPE);
    assert_eq!(again.variant, first.variant);
    assert!(matches!(again.how, How::Cached { .. }), "{again:?}");
    assert_eq!(b.tuning_stats().1, 0, "nothing timed");
    let da = Device::new(Arc::new(a), DeviceKind::Gpu);
    let db = Device::new(Arc::new(b), DeviceKind::Gpu);
    assert_eq!(product(&da, &SHAPE), product(&db, &SHAPE));

    // A corrupt file is ignored (with a warning) and rewritten.
    std::fs::write(&files[0], "{ this is not json").unwrap();
    let Some(c) = tuned(&dir) else { return };
    assert!(matches!(c.matmul_choice(&SHAPE).how, How::Tuned { .. }));
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains(&SHAPE.class()), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tuning_off_and_pinned_choices_are_reported() {
    let dir = scratch("tune-none");
    let pin: MatmulVariant = "32x32/4x4/k16/s4".parse().unwrap();
    for (tuning, want) in [
        (Tuning::Heuristic, "(heuristic)"),
        // Splits of K shorter than the split run as fewer (k 20: two).
        (Tuning::Fixed(pin), "32x32/4x4/k16"),
    ] {
        let Ok(g) = WgpuBackend::with_options(WgpuOptions {
            tuning: tuning.clone(),
            tune_cache: Some(dir.clone()),
            ..WgpuOptions::software_ok()
        })
        .map_err(common::no_gpu) else {
            return;
        };
        // Results are the variant's, whatever tuning would pick; nothing is
        // timed or written.
        let d = Device::new(Arc::new(g), DeviceKind::Gpu);
        let cpu = product(&Device::cpu(), &SHAPE);
        for (x, y) in product(&d, &SHAPE).iter().zip(&cpu) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{tuning:?}: {x} vs {y}"
            );
        }
        assert!(!dir.exists(), "{tuning:?} wrote a tuning cache");

        // `explain` on this device names each matmul's variant.
        let cfg = common::ner_config(7);
        let mut rng = Tensor::rng(3);
        let net = WindowNet::new(cfg.clone(), DType::F32, &Device::cpu(), &mut rng).unwrap();
        let batch = random_batch(&cfg, 9, &Device::cpu(), &mut rng).unwrap();
        let loss = net.loss(&batch, None).unwrap();
        loss.backward().unwrap();
        let sgd = Sgd::new(net.params(), 0.1);
        let plan = plan_for(&[loss], &sgd.assigns().unwrap()).unwrap().unwrap();
        let text = explain_on(&plan, &d);
        let matmul_lines: Vec<&str> = text.lines().filter(|l| l.contains("matmul ")).collect();
        assert_eq!(matmul_lines.len(), 6, "{text}");
        let how = if want.contains('/') {
            "pinned"
        } else {
            "heuristic"
        };
        for l in matmul_lines {
            assert!(l.contains(want) && l.contains(how), "{tuning:?}: {l}");
        }
        assert!(text.contains("a thread per row"), "{text}");

        // And so do the profile's labels.
        d.backend().set_profiling(true);
        let x = Tensor::from_host(HostData::F32(vec![0.5; 6]), &[2, 3], &d).unwrap();
        x.matmul(&x.transpose().unwrap())
            .unwrap()
            .to_vec_f32()
            .unwrap();
        if let Some(times) = d.backend().kernel_times() {
            assert!(times[0].0.starts_with("matmul 2x3x2"), "{times:?}");
            assert!(times[0].0.contains(want), "{times:?}");
        }
    }
}

/// What tuning costs and picks for the window-NER steps on this adapter:
/// time to the first step (tuning, pipeline builds and the step itself),
/// time spent tuning, the plan with each matmul's choice, and every
/// candidate's time on each of the step's matmul shapes.
/// `cargo test --release --test gpu_tune -- --ignored --nocapture`; the
/// large step too with `DELTAGRAD_TUNE_REPORT_LARGE=1` (minutes on
/// lavapipe).
#[test]
#[ignore]
fn ner_step_tuning_report() {
    use deltagrad::backend::wgpu::variants::candidates;
    use deltagrad::model::{Activation, WindowNetConfig};
    let mut steps = vec![("small", 1024, 50, 100, 5)];
    if std::env::var("DELTAGRAD_TUNE_REPORT_LARGE").as_deref() == Ok("1") {
        steps.push(("large", 16384, 300, 1024, 9));
    }
    for (name, b, d, h, c) in steps {
        let dir = scratch(&format!("tune-report-{name}"));
        let start = std::time::Instant::now();
        let Ok(g) = WgpuBackend::with_options(WgpuOptions {
            tuning: Tuning::Auto,
            tune_cache: Some(dir.clone()),
            ..WgpuOptions::software_ok()
        })
        .map_err(common::no_gpu) else {
            return;
        };
        let opened = start.elapsed();
        println!(
            "{name} step (B={b} d={d} H={h} C={c}) on {}",
            g.adapter_summary()
        );
        println!(
            "tuning budget per shape class: {:?}",
            g.options().tune_budget
        );
        let g = Arc::new(g);
        let dev = Device::new(g.clone(), DeviceKind::Gpu);
        let cfg = WindowNetConfig {
            vocab: 20_000,
            dim: d,
            window: 5,
            cap_classes: 0,
            cap_dim: 0,
            hidden: vec![h],
            classes: c,
            activation: Activation::Tanh,
            features: vec![],
        };
        let mut rng = Tensor::rng(1);
        let net = WindowNet::new(cfg.clone(), DType::F32, &dev, &mut rng).unwrap();
        let mut sgd = Sgd::new(net.params(), 0.01);
        let mut step = |rng: &mut rand::rngs::StdRng| {
            let batch = random_batch(&cfg, b, &dev, rng).unwrap();
            let t = std::time::Instant::now();
            let loss = net.loss(&batch, None).unwrap();
            loss.backward().unwrap();
            sgd.step_with(&[&loss]).unwrap();
            dev.sync().unwrap();
            t.elapsed()
        };
        let first = step(&mut rng);
        let (spent, classes) = g.tuning_stats();
        let before = dev.backend().counters();
        let warm = step(&mut rng);
        let after = dev.backend().counters();
        println!(
            "adapter opened in {opened:?}; first step {first:?} (of which tuning {spent:?} for {classes} shape classes); second step {warm:?}"
        );
        println!(
            "per warm step: {} launches, {} dispatches, {} submissions",
            after.launches - before.launches,
            after.dispatches - before.dispatches,
            after.submissions - before.submissions
        );
        // The plan, with each matmul's choice.
        let cpu = Device::cpu();
        let mut rng = Tensor::rng(1);
        let net = WindowNet::new(cfg.clone(), DType::F32, &cpu, &mut rng).unwrap();
        let batch = random_batch(&cfg, b, &cpu, &mut rng).unwrap();
        let loss = net.loss(&batch, None).unwrap();
        loss.backward().unwrap();
        let sgd = Sgd::new(net.params(), 0.01);
        let plan = plan_for(&[loss], &sgd.assigns().unwrap()).unwrap().unwrap();
        print!("{}", explain_on(&plan, &dev));
        // Every candidate on every matmul shape of the step.
        for shape in plan
            .launches
            .iter()
            .filter_map(|l| MatmulShape::of(&l.kernel))
        {
            let cands = candidates(&shape, &g.limits());
            let times = g.time_variants(&shape, &cands, Duration::from_secs(30));
            let best = times.iter().map(|t| t.ms).fold(f64::INFINITY, f64::min);
            let row: Vec<String> = times
                .iter()
                .map(|t| format!("{} {:.3} ms ({:.2}x)", t.variant, t.ms, t.ms / best))
                .collect();
            let MatmulShape {
                m,
                k,
                n,
                trans_a,
                trans_b,
            } = shape;
            println!("{m}x{k}x{n} ta={trans_a} tb={trans_b}: {}", row.join("; "));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
