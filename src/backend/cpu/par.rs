//! Work splitting for the CPU backend: fixed-size pieces on a thread pool.
//!
//! Every parallel loop here splits its output into pieces whose boundaries
//! depend only on the sizes of the problem, never on the thread count, and
//! each output element is computed by exactly one piece. The threads only
//! decide *who* computes a piece, not *what* it computes, so results are
//! bit-identical for any number of threads.

use crate::error::{Error, Result};

/// Below this many elements of work a loop stays on the calling thread:
/// waking the pool costs a few microseconds, about what one core needs for
/// this many simple element operations.
pub(crate) const PAR_MIN: usize = 1 << 15;

/// A thread pool of a fixed size (none for one thread).
pub(crate) struct Pool {
    threads: usize,
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} threads)", self.threads)
    }
}

impl Pool {
    /// A pool of `threads` workers; 0 is an error, and so is a pool the
    /// operating system refuses to start.
    pub(crate) fn new(threads: usize) -> Result<Pool> {
        if threads == 0 {
            return Err(Error::invalid("cpu threads", "need at least one thread"));
        }
        let pool = if threads == 1 {
            None
        } else {
            let p = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("deltagrad-cpu-{i}"))
                .build()
                .map_err(|e| {
                    Error::invalid("cpu threads", format!("cannot start {threads}: {e}"))
                })?;
            Some(p)
        };
        Ok(Pool { threads, pool })
    }

    /// Everything on the calling thread.
    pub(crate) fn single() -> Pool {
        Pool {
            threads: 1,
            pool: None,
        }
    }

    /// The number of threads work is spread over.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(start, piece)` for consecutive pieces of `out` of `piece`
    /// elements each (the last may be shorter), in parallel when there are
    /// several pieces and several threads.
    pub(crate) fn pieces<T: Send>(
        &self,
        out: &mut [T],
        piece: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        let piece = piece.max(1);
        match &self.pool {
            Some(pool) if out.len() > piece => {
                use rayon::prelude::*;
                pool.install(|| {
                    out.par_chunks_mut(piece)
                        .enumerate()
                        .for_each(|(i, c)| f(i * piece, c))
                });
            }
            _ => {
                for (i, c) in out.chunks_mut(piece).enumerate() {
                    f(i * piece, c);
                }
            }
        }
    }

    /// Calls `f(t)` for every task `t` in `0..tasks`, in parallel when
    /// there are several.
    pub(crate) fn tasks(&self, tasks: usize, f: impl Fn(usize) + Sync) {
        match &self.pool {
            Some(pool) if tasks > 1 => {
                use rayon::prelude::*;
                pool.install(|| (0..tasks).into_par_iter().for_each(&f));
            }
            _ => (0..tasks).for_each(f),
        }
    }

    /// `pieces` over rows of `row_len` elements, grouped so that a piece
    /// holds about `PAR_MIN` units of `work_per_row`; small outputs take
    /// one piece.
    pub(crate) fn rows<T: Send>(
        &self,
        out: &mut [T],
        row_len: usize,
        work_per_row: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        let row_len = row_len.max(1);
        let rows_per_piece = PAR_MIN.div_ceil(work_per_row.max(1)).max(1);
        self.pieces(out, rows_per_piece * row_len, |start, c| {
            f(start / row_len, c)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_output_once_at_any_thread_count() {
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads).unwrap();
            let mut v = vec![0u32; 10_001];
            pool.pieces(&mut v, 97, |start, c| {
                for (i, x) in c.iter_mut().enumerate() {
                    *x += (start + i) as u32 + 1;
                }
            });
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32 + 1));
        }
        assert!(Pool::new(0).is_err());
    }
}
