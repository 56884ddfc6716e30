//! How the rows of a large product are shared between threads whose
//! cores run at different speeds.
//!
//! On a virtual machine one core may run a fifth slower than another for
//! a while, and a product split into equal blocks then waits on the slow
//! one: in 1024³ products at 2 threads, one block ended 0.3–5 ms after
//! the other, about the same call after call (BENCHMARKS). So each
//! thread's speed over the last large products is kept, and the next
//! one is split in proportion. Who computes which rows never changes a
//! value (every row is summed the same way whichever block it is in), so
//! results stay bit-identical whatever the timings.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// No thread's speed is taken as less than this fraction of the average,
/// nor more than its inverse, so that a run of slow calls cannot starve
/// a thread (at 2 threads, each keeps at least a fifth of the rows).
const MIN_SPEED: f32 = 0.5;

/// The weight of the last product in a thread's speed (the rest: the
/// products before).
const LEARN: f32 = 0.5;

/// Each thread's relative speed, by slot (0: the calling thread, i + 1:
/// helper i), averaging 1.
pub(crate) struct Speeds(Box<[AtomicU32]>);

/// One block of a product: the slot of the thread that ran it, its rows,
/// how long it took.
pub(crate) type Run = (usize, usize, Duration);

impl Speeds {
    /// Equal speeds for `threads` threads.
    pub(crate) fn new(threads: usize) -> Speeds {
        Speeds(
            (0..threads.max(1))
                .map(|_| AtomicU32::new(1f32.to_bits()))
                .collect(),
        )
    }

    fn get(&self, slot: usize) -> f32 {
        f32::from_bits(self.0[slot].load(Ordering::Relaxed))
    }

    /// Where `len` rows are cut into one block per thread, in proportion
    /// to their speeds: `threads + 1` ascending bounds from 0 to `len`,
    /// every inner bound a multiple of `align`.
    pub(crate) fn bounds(&self, len: usize, align: usize) -> Vec<usize> {
        let n = self.0.len();
        let total: f32 = (0..n).map(|s| self.get(s)).sum();
        let mut bounds = Vec::with_capacity(n + 1);
        bounds.push(0);
        let mut acc = 0.0;
        for s in 0..n - 1 {
            acc += self.get(s);
            let at = (len as f32 * acc / total) as usize;
            let at = at.next_multiple_of(align.max(1)).min(len);
            bounds.push(at.max(bounds[s]));
        }
        bounds.push(len);
        bounds
    }

    /// Learns from one product's blocks, one per thread; a product in
    /// which some thread ran no block (a helper that came late, so the
    /// calling thread ran two) teaches nothing.
    pub(crate) fn learn(&self, runs: &[Run]) {
        let n = self.0.len();
        let mut rate = vec![0f32; n];
        for &(slot, rows, took) in runs {
            let Some(r) = rate.get_mut(slot) else { return };
            if *r != 0.0 || rows == 0 {
                return;
            }
            *r = rows as f32 / took.as_secs_f32().max(1e-9);
        }
        if rate.contains(&0.0) {
            return;
        }
        let mean = rate.iter().sum::<f32>() / n as f32;
        for (s, r) in rate.iter().enumerate() {
            let old = self.get(s);
            let new = (LEARN * r / mean + (1.0 - LEARN) * old).clamp(MIN_SPEED, 1.0 / MIN_SPEED);
            self.0[s].store(new.to_bits(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_follow_the_speeds_and_learning_moves_them() {
        let speeds = Speeds::new(2);
        assert_eq!(speeds.bounds(1024, 12), vec![0, 516, 1024]);
        // Slot 1 ran its rows in half the time: it gets more next time.
        let ms = Duration::from_millis;
        speeds.learn(&[(0, 516, ms(10)), (1, 508, ms(5))]);
        let b = speeds.bounds(1024, 12);
        assert!(b[1] < 516 && b[1].is_multiple_of(12), "{b:?}");
        // A product some thread took no part in teaches nothing.
        speeds.learn(&[(0, 512, ms(1)), (0, 512, ms(1))]);
        assert_eq!(speeds.bounds(1024, 12), b);
        // However slow a thread has been, it keeps a fifth of the rows.
        for _ in 0..20 {
            speeds.learn(&[(0, 512, ms(1000)), (1, 512, ms(1))]);
        }
        let b = speeds.bounds(1024, 12);
        assert!(b[1] >= 1024 / 5 - 12, "{b:?}");
        // Bounds cover the rows in order, for any thread count.
        for threads in 1..5 {
            let b = Speeds::new(threads).bounds(100, 8);
            assert_eq!((b.len(), b[0], b[threads]), (threads + 1, 0, 100));
            assert!(b.windows(2).all(|w| w[0] <= w[1]), "{b:?}");
        }
    }
}
