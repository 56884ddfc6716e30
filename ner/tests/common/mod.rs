//! Helpers shared by the application's integration tests (the engine's
//! tests have their own, larger set in the root `tests/common`).
#![allow(dead_code)]

use deltagrad::Device;

/// The GPU device (software adapters allowed), or `None` to skip: under
/// `DELTAGRAD_REQUIRE_GPU=1` (as in CI) a missing adapter fails instead.
pub fn gpu() -> Option<Device> {
    match Device::gpu() {
        Ok(d) => Some(d),
        Err(e) => {
            assert!(
                std::env::var("DELTAGRAD_REQUIRE_GPU").as_deref() != Ok("1"),
                "DELTAGRAD_REQUIRE_GPU=1 but no GPU adapter: {e}"
            );
            eprintln!("skipping: no GPU adapter ({e})");
            None
        }
    }
}
