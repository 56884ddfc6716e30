//! Forward values of the losses and normalisations against closed forms
//! computed here in f64 (gradient checks use the engine's own forward, and
//! the equivalence tests compare two backends running one plan, so neither
//! would notice a wrong formula shared by both).

mod common;
use deltagrad::{DType, Device, HostData, Result, Tensor};

const LOGITS: [[f64; 4]; 3] = [
    [0.5, -1.25, 2.0, 0.0],
    [3.0, 3.0, -2.5, 1.5],
    [-0.75, 0.25, 0.125, -4.0],
];
const LABELS: [u32; 3] = [2, 0, 3];

fn softmax(row: &[f64]) -> Vec<f64> {
    let z: f64 = row.iter().map(|x| x.exp()).sum();
    row.iter().map(|x| x.exp() / z).collect()
}

fn devices() -> Vec<(Device, DType, f64)> {
    let mut d = vec![
        (Device::cpu(), DType::F64, 1e-12),
        (Device::cpu(), DType::F32, 1e-6),
    ];
    if let Some(g) = common::gpu() {
        d.push((g, DType::F32, 2e-6));
    }
    d
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs closed form {w}"
        );
    }
}

fn logits(d: &Device, dt: DType) -> Result<Tensor> {
    let v: Vec<f64> = LOGITS.iter().flatten().copied().collect();
    Tensor::from_host(HostData::from_f64(&v, dt), &[3, 4], d)
}

#[test]
fn softmax_and_log_softmax() -> Result<()> {
    for (d, dt, tol) in devices() {
        let want: Vec<f64> = LOGITS.iter().flat_map(|r| softmax(r)).collect();
        close(
            &format!("softmax {d} {dt}"),
            &logits(&d, dt)?.softmax()?.to_vec_f64()?,
            &want,
            tol,
        );
        let want_log: Vec<f64> = want.iter().map(|p| p.ln()).collect();
        let got = logits(&d, dt)?.log_softmax()?.to_vec_f64()?;
        close(&format!("log_softmax {d} {dt}"), &got, &want_log, tol);
        // Rows sum to one.
        for r in got.chunks(4) {
            let s: f64 = r.iter().map(|v| v.exp()).sum();
            assert!((s - 1.0).abs() < 10.0 * tol, "{d}: row sums to {s}");
        }
    }
    Ok(())
}

#[test]
fn softmax_cross_entropy_is_the_mean_negative_log_likelihood() -> Result<()> {
    for (d, dt, tol) in devices() {
        let want: f64 = LOGITS
            .iter()
            .zip(LABELS)
            .map(|(r, y)| -softmax(r)[y as usize].ln())
            .sum::<f64>()
            / 3.0;
        let y = Tensor::ids(LABELS.to_vec(), &[3], &d)?;
        let got = logits(&d, dt)?.softmax_cross_entropy(&y)?.item()?;
        close(
            &format!("softmax_cross_entropy {d} {dt}"),
            &[got],
            &[want],
            tol,
        );
    }
    Ok(())
}

#[test]
fn logistic_loss_is_binary_cross_entropy() -> Result<()> {
    let x = [0.0, 2.0, -3.0, 0.5, 30.0, -30.0];
    let t = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0];
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    // −[t log σ(x) + (1 − t) log(1 − σ(x))], with log(1 − σ(x)) = log σ(−x).
    let want: f64 = x
        .iter()
        .zip(&t)
        .map(|(&x, &t)| -(t * sig(x).ln() + (1.0 - t) * sig(-x).ln()))
        .sum::<f64>()
        / 6.0;
    for (d, dt, tol) in devices() {
        let xs = Tensor::from_host(HostData::from_f64(&x, dt), &[6], &d)?;
        let ts = Tensor::from_host(HostData::from_f64(&t, dt), &[6], &d)?;
        let got = xs.logistic_loss(&ts)?.item()?;
        close(&format!("logistic_loss {d} {dt}"), &[got], &[want], tol);
    }
    Ok(())
}

#[test]
fn log_sqrt_and_means() -> Result<()> {
    let v = [0.25, 1.0, 2.0, 9.0, 1e-3, 100.0];
    for (d, dt, tol) in devices() {
        let x = Tensor::from_host(HostData::from_f64(&v, dt), &[2, 3], &d)?;
        let ln: Vec<f64> = v.iter().map(|a| a.ln()).collect();
        close(&format!("log {d}"), &x.log()?.to_vec_f64()?, &ln, tol);
        let sq: Vec<f64> = v.iter().map(|a| a.sqrt()).collect();
        close(&format!("sqrt {d}"), &x.sqrt()?.to_vec_f64()?, &sq, tol);
        let rows = [(0.25 + 1.0 + 2.0) / 3.0, (9.0 + 1e-3 + 100.0) / 3.0];
        close(
            &format!("mean_axis {d}"),
            &x.mean_axis(1)?.to_vec_f64()?,
            &rows,
            tol,
        );
        let all = v.iter().sum::<f64>() / 6.0;
        close(&format!("mean {d}"), &[x.mean()?.item()?], &[all], tol);
    }
    Ok(())
}
