//! The CPU GEMM against `matrixmultiply`, call by call on one thread, on
//! the NER model's products and on 1024³ (`cargo bench --bench gemm`).
//!
//! Calls alternate so that both sides see the same host: on a shared
//! machine the speed drifts by more than the difference measured. Each
//! line is the median of 15 rounds of each side's time per call.

use std::time::Instant;

use deltagrad::backend::cpu::Gemm;

/// (name, m, k, n, A stored transposed, B stored transposed).
const SHAPES: &[(&str, usize, usize, usize, bool, bool)] = &[
    ("1024³ A·B", 1024, 1024, 1024, false, false),
    ("1024³ Aᵀ·B", 1024, 1024, 1024, true, false),
    ("1024³ A·Bᵀ", 1024, 1024, 1024, false, true),
    ("small X·W 1024×250×100", 1024, 250, 100, false, false),
    ("small δh·Wᵀ 1024×100×250", 1024, 100, 250, false, true),
    ("small Xᵀ·δh 250×1024×100", 250, 1024, 100, true, false),
    ("small h·U 1024×100×5", 1024, 100, 5, false, false),
    ("small δ·Uᵀ 1024×5×100", 1024, 5, 100, false, true),
    ("small hᵀ·δ 100×1024×5", 100, 1024, 5, true, false),
    ("train X·W 32×275×300", 32, 275, 300, false, false),
    ("train δh·Wᵀ 32×300×275", 32, 300, 275, false, true),
    ("train Xᵀ·δh 275×32×300", 275, 32, 300, true, false),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    println!(
        "{:28} {:>14} {:>14} {:>7} {:>9}",
        "product", "matrixmult. µs", "deltagrad µs", "ratio", "GFLOP/s"
    );
    for &(name, m, k, n, ta, tb) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 97) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 89) as f32 * 0.01).collect();
        let sa = if ta { (1, m as isize) } else { (k as isize, 1) };
        let sb = if tb { (1, k as isize) } else { (n as isize, 1) };
        let mut c = vec![0.0f32; m * n];
        let reps = (200_000_000 / (m * n * k)).clamp(1, 2000);
        let (mut theirs, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..15 {
            let t = Instant::now();
            for _ in 0..reps {
                // SAFETY: A is m×k and B k×n under their strides; C is m×n.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        sa.0,
                        sa.1,
                        b.as_ptr(),
                        sb.0,
                        sb.1,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                };
            }
            theirs.push(t.elapsed().as_secs_f64() / reps as f64);
            let t = Instant::now();
            for _ in 0..reps {
                f32::gemm(m, k, n, &a, sa.0, sa.1, &b, sb.0, sb.1, &mut c);
            }
            ours.push(t.elapsed().as_secs_f64() / reps as f64);
        }
        let (x, y) = (median(theirs), median(ours));
        let gflops = 2.0 * (m * n * k) as f64 / y / 1e9;
        println!(
            "{name:28} {:14.1} {:14.1} {:6.2}× {gflops:9.0}",
            x * 1e6,
            y * 1e6,
            x / y
        );
    }
}
