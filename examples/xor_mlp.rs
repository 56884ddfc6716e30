//! XOR with a two-layer MLP, trained with Adam: a tiny model that runs on
//! the GPU when `Device::best()` finds a hardware one, and otherwise on the
//! CPU backend; it says which.
//!
//! Run with `cargo run --example xor_mlp` (`DELTAGRAD_DEVICE=gpu` to use a
//! software GPU adapter too).

use deltagrad::{Adam, DType, Device, Result, Tensor};

/// Trains for `steps` full-batch Adam steps on `device`; returns the
/// printed report and the final loss.
pub fn run(device: &Device, steps: usize) -> Result<(String, f64)> {
    let mut out = format!("device: {}\n", device.backend().name());
    let mut rng = Tensor::rng(1);
    let x = Tensor::from_host(
        deltagrad::HostData::F32(vec![0., 0., 0., 1., 1., 0., 1., 1.]),
        &[4, 2],
        device,
    )?;
    let y = Tensor::ids(vec![0, 1, 1, 0], &[4], device)?;
    let w1 = Tensor::xavier_uniform(2, 8, DType::F32, device, &mut rng)?.requires_grad();
    let b1 = Tensor::rand_uniform(&[8], -0.1, 0.1, DType::F32, device, &mut rng)?.requires_grad();
    let w2 = Tensor::xavier_uniform(8, 2, DType::F32, device, &mut rng)?.requires_grad();
    let b2 = Tensor::rand_uniform(&[2], -0.1, 0.1, DType::F32, device, &mut rng)?.requires_grad();
    let mut adam = Adam::new(vec![w1.clone(), b1.clone(), w2.clone(), b2.clone()], 0.05)?;
    let logits = || x.linear(&w1, &b1)?.tanh()?.linear(&w2, &b2);
    let mut last = f64::NAN;
    for step in 0..steps {
        let loss = logits()?.softmax_cross_entropy(&y)?;
        loss.backward()?;
        adam.step_with(&[&loss])?;
        if step % (steps / 5).max(1) == 0 || step + 1 == steps {
            last = loss.item()?;
            out += &format!("step {step:4}  loss {last:.5}\n");
        }
    }
    let pred = logits()?.argmax(1)?.to_ids()?;
    for (i, p) in pred.iter().enumerate() {
        out += &format!("xor({}, {}) = {p}\n", i / 2, i % 2);
    }
    Ok((out, last))
}

#[allow(dead_code)]
fn main() -> Result<()> {
    // Device::best() unless DELTAGRAD_DEVICE says cpu or gpu.
    let device = Device::from_env()?;
    let kind = if device.is_gpu() {
        "the GPU"
    } else {
        "the CPU"
    };
    println!("running on {kind}");
    print!("{}", run(&device, 300)?.0);
    Ok(())
}
