//! Criterion view of the `deltagrad bench` cases at modest sizes, for
//! tracking regressions between commits (`cargo bench --bench throughput`).
//! The cases are the library's own (`deltagrad_ner::bench::cases`), so what is
//! timed — including the device sync that ends each iteration — is the same
//! as in `deltagrad bench`. The GPU is benched only when it is hardware: a
//! software adapter is far slower than the CPU backend.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use deltagrad::Device;
use deltagrad_ner::bench::{CaseSpec, Sizes, cases, time_case};

/// Cases that fit a 2-core CI machine in a few seconds each.
const CASES: &[&str] = &[
    "ner-small-fwd",
    "ner-small-step",
    "matmul-1024",
    "matmul-1024-tn",
    "matmul-1024-nt",
    "tanh-fwd",
    "tanh-bwd",
];

fn sizes() -> Sizes {
    Sizes {
        // 256³ rather than 1024³ (the case names stay the full-size ones).
        matmul_divisor: 4,
        tanh_len: 1 << 20,
        ..Sizes::full()
    }
}

fn devices() -> Vec<Device> {
    let mut d = vec![Device::cpu()];
    d.extend(Device::hardware_gpu().ok());
    d
}

fn throughput(c: &mut Criterion) {
    let sizes = sizes();
    for device in devices() {
        let mut group = c.benchmark_group(format!("{device}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for name in CASES {
            let spec = CaseSpec::find(name).expect("a known case");
            let mut case = cases::build(spec, &sizes, &device)
                .unwrap_or_else(|e| panic!("setting up {name} on {device}: {e}"));
            group.bench_function(*name, |b| {
                // The library's timing loop: `prepare` untimed, `run` timed
                // up to the device's completion.
                b.iter_custom(|iters| {
                    let ms = time_case(case.as_mut(), 0, iters as usize, || {})
                        .unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
                    Duration::from_secs_f64(ms.iter().sum::<f64>() / 1e3)
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    // No plots: the plotters backend needs system fonts that CI machines
    // lack, and the numbers are what a regression check reads.
    config = Criterion::default().without_plots();
    targets = throughput
}
criterion_main!(benches);
