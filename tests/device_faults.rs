//! Device faults come back as errors with context, never a panic or a hang.

mod common;

use std::time::Duration;

use deltagrad::backend::Backend;
use deltagrad::backend::wgpu::{WgpuBackend, WgpuOptions};
use deltagrad::ir::{Expr, Kernel, Launch, Plan, Slot, SlotKind};
use deltagrad::{DType, HostData};

fn backend(timeout: Duration) -> Option<WgpuBackend> {
    let opts = WgpuOptions {
        allow_software: true,
        poll_timeout: timeout,
        ..WgpuOptions::software_ok()
    };
    WgpuBackend::with_options(opts).map_err(common::no_gpu).ok()
}

/// A plan computing one n×n×n matmul.
fn matmul_plan(n: usize) -> Plan {
    let slot = |kind| Slot {
        len: n * n,
        dtype: DType::F32,
        kind,
    };
    Plan {
        id: 9_000_001,
        slots: vec![
            slot(SlotKind::Input(0)),
            slot(SlotKind::Input(1)),
            slot(SlotKind::Output(0)),
        ],
        launches: vec![Launch {
            kernel: Kernel::Matmul {
                m: n,
                k: n,
                n,
                a: 0,
                b: 1,
                trans_a: false,
                trans_b: false,
                epilogue: None,
                out: 2,
            },
            fused: vec![],
        }],
        n_inputs: 2,
        n_outputs: 1,
        n_temp_buffers: 0,
    }
}

#[test]
fn a_wait_past_the_timeout_is_an_error_and_the_device_recovers() {
    let Some(gpu) = backend(Duration::from_nanos(1)) else {
        return;
    };
    let n = 384;
    let a = gpu.upload(&HostData::F32(vec![0.5; n * n])).unwrap();
    let plan = matmul_plan(n);
    // A 384³ matmul takes far longer than a nanosecond on any device.
    let mut timed_out = None;
    for _ in 0..20 {
        let out = gpu.execute(&plan, &[a.clone(), a.clone()]).unwrap();
        if let Err(e) = gpu.download(&out[0]) {
            timed_out = Some(e.to_string());
            break;
        }
    }
    let m = timed_out.expect("no wait ever exceeded a 1 ns timeout");
    assert!(m.contains("did not finish within"), "{m}");
    // The timeout is not fatal: once the work drains, waiting succeeds again.
    let mut drained = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        if gpu.sync().is_ok() {
            drained = true;
            break;
        }
    }
    assert!(drained, "the device never drained after a timeout");
}

#[test]
fn a_buffer_over_the_adapter_limit_is_an_error_naming_both_sizes() {
    let Some(gpu) = backend(Duration::from_secs(60)) else {
        return;
    };
    // 8 GiB of f32: over lavapipe's and most GPUs' storage-binding limit.
    let n = 1usize << 31;
    let plan = Plan {
        id: 9_000_002,
        slots: vec![Slot {
            len: n,
            dtype: DType::F32,
            kind: SlotKind::Output(0),
        }],
        launches: vec![Launch {
            kernel: Kernel::Elementwise {
                shape: vec![n],
                inputs: vec![],
                expr: Expr::constant(1.0),
                out: 0,
            },
            fused: vec![],
        }],
        n_inputs: 0,
        n_outputs: 1,
        n_temp_buffers: 0,
    };
    let e = gpu.execute(&plan, &[]).unwrap_err().to_string();
    assert!(e.contains(&format!("{}", n * 4)), "{e}");
    assert!(e.contains("max_storage_buffer_binding_size"), "{e}");
}

#[test]
fn a_lost_device_makes_every_later_call_an_error_not_a_panic() {
    let Some(gpu) = backend(Duration::from_secs(60)) else {
        return;
    };
    let a = gpu.upload(&HostData::F32(vec![0.5; 64 * 64])).unwrap();
    let plan = matmul_plan(64);
    let out = gpu.execute(&plan, &[a.clone(), a.clone()]).unwrap();
    gpu.download(&out[0]).unwrap();
    gpu.lose_device();
    // Give the loss callback a chance to run.
    let _ = gpu.sync();
    let errors = [
        gpu.execute(&plan, &[a.clone(), a.clone()]).map(|_| ()),
        gpu.download(&out[0]).map(|_| ()),
        gpu.upload(&HostData::F32(vec![1.0; 4])).map(|_| ()),
        gpu.sync(),
    ];
    for (i, e) in errors.into_iter().enumerate() {
        let m = e
            .expect_err("a call on a lost device succeeded")
            .to_string();
        assert!(m.contains("device lost"), "call {i}: {m}");
    }
}
