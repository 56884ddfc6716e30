//! Work splitting for the CPU backend: fixed-size pieces on a thread pool.
//!
//! Every parallel loop here splits its output into pieces whose boundaries
//! depend only on the sizes of the problem, never on the thread count, and
//! each output element is computed by exactly one piece. The threads only
//! decide *who* computes a piece, not *what* it computes, so results are
//! bit-identical for any number of threads. (A loop whose cut cannot
//! change any value, such as a matmul's blocks of C or the sparse row
//! update's ranges of rows, may cut by the thread count, or by how fast
//! each thread ran the last large product: `balance`.)

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::balance::Speeds;
use crate::error::{Error, Result};

/// Below this many elements of work a loop stays on the calling thread:
/// waking the pool costs a few microseconds, about what one core needs for
/// this many simple element operations.
pub(crate) const PAR_MIN: usize = 1 << 15;

/// How long a helper keeps polling for the next loop after finishing one
/// before it sleeps. A sleeping helper took 20-30 µs to wake (and the
/// wake-up call cost the caller 5-8 µs) on a 2-vCPU virtual machine, as
/// long as a step's small loops; the kernels of a step follow each other
/// within this time, so a helper that keeps polling joins each at once.
/// The price: while a model trains, the helpers keep their cores busy
/// (`train --model window`, 2 threads: 38 s of CPU in 20 s of wall time).
const POLL: Duration = Duration::from_micros(300);

/// A thread pool of a fixed size: the calling thread and `threads − 1`
/// helpers (none for one thread).
pub(crate) struct Pool {
    threads: usize,
    helpers: Option<Helpers>,
    speeds: Speeds,
}

thread_local! {
    /// This thread's place in its pool: 0 for a thread that calls it,
    /// i + 1 for helper i.
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// This thread's place in the pool whose task it runs: 0 for the calling
/// thread, i + 1 for helper i.
pub(crate) fn slot() -> usize {
    SLOT.with(Cell::get)
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} threads)", self.threads)
    }
}

/// The helper threads and what they share with the pool.
struct Helpers {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

/// The latest loop, published for the helpers.
struct Shared {
    /// Bumped for every loop posted (and at shutdown): what helpers poll.
    posted: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    job: Option<Arc<Job>>,
    /// Helpers waiting on `wake`: the pool signals only when there are
    /// some, so polling helpers cost the caller no system call.
    sleeping: usize,
    shutdown: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a thread panicked holding it; the
        // state is a few plain fields, always consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pool {
    /// A pool of `threads` threads; 0 is an error, and so is a pool the
    /// operating system refuses to start.
    pub(crate) fn new(threads: usize) -> Result<Pool> {
        if threads == 0 {
            return Err(Error::invalid("cpu threads", "need at least one thread"));
        }
        if threads == 1 {
            return Ok(Pool::single());
        }
        let shared = Arc::new(Shared {
            posted: AtomicU64::new(0),
            state: Mutex::new(State {
                job: None,
                sleeping: 0,
                shutdown: false,
            }),
            wake: Condvar::new(),
        });
        let mut helpers = Helpers {
            shared: Arc::clone(&shared),
            handles: Vec::with_capacity(threads - 1),
        };
        for i in 0..threads - 1 {
            let s = Arc::clone(&shared);
            let h = std::thread::Builder::new()
                .name(format!("deltagrad-cpu-{i}"))
                .spawn(move || {
                    SLOT.with(|slot| slot.set(i + 1));
                    helper(&s)
                })
                .map_err(|e| {
                    Error::invalid("cpu threads", format!("cannot start {threads}: {e}"))
                })?;
            // Pushed one by one: if a later spawn fails, dropping
            // `helpers` stops the ones already running.
            helpers.handles.push(h);
        }
        Ok(Pool {
            threads,
            helpers: Some(helpers),
            speeds: Speeds::new(threads),
        })
    }

    /// Everything on the calling thread.
    pub(crate) fn single() -> Pool {
        Pool {
            threads: 1,
            helpers: None,
            speeds: Speeds::new(1),
        }
    }

    /// Each thread's recent speed, for splitting large products.
    pub(crate) fn speeds(&self) -> &Speeds {
        &self.speeds
    }

    /// The number of threads work is spread over.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(t)` for every task `t` in `0..tasks`, in parallel when
    /// there are several. The calling thread works too, so a task starts
    /// at once even while the helpers are still waking up, and it takes
    /// whatever tasks they have not claimed.
    pub(crate) fn tasks(&self, tasks: usize, f: impl Fn(usize) + Sync) {
        let Some(helpers) = self.helpers.as_ref().filter(|_| tasks > 1) else {
            (0..tasks).for_each(f);
            return;
        };
        let f: &(dyn Fn(usize) + Sync) = &f;
        // SAFETY (of the lifetime erased here): `f` is only called for a
        // task claimed from `next`, and this function returns only once
        // every claimed task is done (even when one panics), so no call
        // outlives the borrow; a helper that looks at the job later claims
        // nothing and never dereferences the pointer.
        let f = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const (dyn Fn(usize) + Sync)>(
                f,
            )
        };
        let job = Arc::new(Job {
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            tasks,
            f,
        });
        let shared = &helpers.shared;
        let sleeping = {
            let mut st = shared.lock();
            st.job = Some(Arc::clone(&job));
            shared.posted.fetch_add(1, Ordering::Release);
            st.sleeping
        };
        if sleeping > 0 {
            shared.wake.notify_all();
        }
        job.work();
        let mut spins = 0u32;
        while job.done.load(Ordering::Acquire) < tasks {
            if spins < 64 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
        if job.panicked.load(Ordering::Acquire) {
            panic!("a CPU kernel task panicked");
        }
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
        let len = out.len();
        let base = SendPtr(out.as_mut_ptr());
        self.tasks(len.div_ceil(piece), |i| {
            let start = i * piece;
            let n = piece.min(len - start);
            // SAFETY: task i alone gets elements start..start + n of `out`,
            // which is borrowed mutably for the whole call.
            let part = unsafe { std::slice::from_raw_parts_mut(base.at(start), n) };
            f(start, part);
        });
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

impl Drop for Helpers {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.posted.fetch_add(1, Ordering::Release);
        self.shared.wake.notify_all();
        for h in self.handles.drain(..) {
            // A helper that panicked has nothing left to clean up.
            let _ = h.join();
        }
    }
}

/// A helper's life: run each loop posted, poll for the next for `POLL`,
/// then sleep until one is posted.
fn helper(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        let start = Instant::now();
        let mut polls = 0u32;
        while shared.posted.load(Ordering::Acquire) == seen && start.elapsed() < POLL {
            polls += 1;
            if polls.is_multiple_of(64) {
                // Let another runnable thread have this core if the
                // machine is busy.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let job = {
            let mut st = shared.lock();
            while shared.posted.load(Ordering::Acquire) == seen && !st.shutdown {
                st.sleeping += 1;
                st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.sleeping -= 1;
            }
            if st.shutdown {
                return;
            }
            seen = shared.posted.load(Ordering::Acquire);
            st.job.clone()
        };
        if let Some(job) = job {
            job.work();
        }
    }
}

/// One parallel loop: tasks are claimed in turn from `next`.
struct Job {
    next: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
    tasks: usize,
    f: *const (dyn Fn(usize) + Sync),
}

// SAFETY: `f` points to a `Sync` closure, called only while `tasks` waits.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

impl Job {
    fn work(&self) {
        loop {
            let t = self.next.fetch_add(1, Ordering::Relaxed);
            if t >= self.tasks {
                return;
            }
            // A panicking task still counts as done, so that `tasks`
            // never waits forever and never returns while a task runs.
            // SAFETY: task t was claimed, so `Pool::tasks` is still waiting
            // and the closure is alive.
            let f = unsafe { &*self.f };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(t))).is_err() {
                self.panicked.store(true, Ordering::Release);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// A pointer that may cross threads: each task writes a disjoint part.
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// Not derived: a derive would ask `T: Copy`.
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: the tasks given the pointer write disjoint elements.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The element `i` places further (a method, so that closures capture
    /// the whole `SendPtr` rather than its raw-pointer field).
    ///
    /// # Safety
    /// As `pointer::add`.
    pub(crate) unsafe fn at(self, i: usize) -> *mut T {
        unsafe { self.0.add(i) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread is slot 0 and each helper has a slot of its own
    /// below the thread count: what `balance` keeps speeds by.
    #[test]
    fn slots_name_the_caller_and_each_helper() {
        let pool = Pool::new(3).unwrap();
        let caller = std::thread::current().id();
        let seen = Mutex::new(Vec::new());
        for _ in 0..20 {
            pool.tasks(3, |_| {
                std::thread::sleep(Duration::from_millis(1));
                let me = (std::thread::current().id(), slot());
                seen.lock().unwrap().push(me);
            });
        }
        let seen = seen.into_inner().unwrap();
        // 60 tasks of 1 ms each: the helpers take some of them.
        assert!(
            seen.iter().any(|&(t, _)| t != caller),
            "no helper ran a task"
        );
        for &(thread, s) in &seen {
            assert!(s < 3, "slot {s}");
            assert_eq!(thread == caller, s == 0, "slot {s}");
            // One slot per thread.
            assert!(
                seen.iter().all(|&(t, o)| (t == thread) == (o == s)),
                "{seen:?}"
            );
        }
        assert_eq!(slot(), 0);
    }

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
