//! Thread-local on/off switches set for the length of a closure (no-grad
//! recording, fusion), restored even if the closure panics.

use std::cell::Cell;
use std::thread::LocalKey;

/// Runs `f` with `flag` set to `on`, then restores its previous value.
pub(crate) fn with_flag<R>(
    flag: &'static LocalKey<Cell<bool>>,
    on: bool,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore(&'static LocalKey<Cell<bool>>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.with(|c| c.set(self.1));
        }
    }
    let _restore = Restore(flag, flag.with(|c| c.replace(on)));
    f()
}
