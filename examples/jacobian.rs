//! The lecture's Jacobians, computed with `deltagrad::functional`:
//!
//! - h = f(z) element-wise: ∂h/∂z = diag(f'(z)), for tanh 1 − tanh²(z);
//! - z = Wx + b: ∂z/∂x = W, ∂z/∂b = I;
//! - s = uᵀh: ∂s/∂h = uᵀ; by the chain rule ∂s/∂b = uᵀ diag(f'(z)) = δᵀ;
//! - ∂s/∂W: the Jacobian of a scalar with respect to an n × m matrix is
//!   one row of n·m entries; reshaped (the shape convention) it is δxᵀ;
//! - plus a vector-Jacobian product, a Jacobian-vector product and a
//!   Hessian.
//!
//! Run with `cargo run --example jacobian`.

use deltagrad::functional::{hessian, jacobian, jvp, vjp};
use deltagrad::{Result, Tensor};

fn matrix(t: &Tensor) -> Result<String> {
    let v = t.to_vec_f64()?;
    let cols = *t.shape().last().unwrap_or(&1);
    Ok(v.chunks(cols.max(1))
        .map(|r| {
            let row: Vec<String> = r.iter().map(|x| format!("{x:8.4}")).collect();
            format!("     [{}]\n", row.join(" "))
        })
        .collect())
}

/// Computes the Jacobians and returns what the example prints.
pub fn run() -> Result<String> {
    let mut out = String::new();
    let (n, m) = (3, 4);
    let w = Tensor::from_vec(
        (0..n * m)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 10.0)
            .collect(),
        &[n, m],
    )?;
    let x = Tensor::from_vec(vec![0.3, -0.8, 0.5, 1.1], &[m, 1])?;
    let b = Tensor::from_vec(vec![0.1, -0.2, 0.05], &[n, 1])?;
    let u = Tensor::from_vec(vec![0.7, -1.3, 0.4], &[n, 1])?;
    let z = w.matmul(&x)?.add(&b)?;

    let dh_dz = jacobian(|z| z.tanh(), &z.reshape(&[n])?)?;
    out += "∂h/∂z for h = tanh(z): diagonal, entries 1 − tanh²(z)\n";
    out += &matrix(&dh_dz)?;
    let expect: Vec<f64> = z
        .to_vec_f64()?
        .iter()
        .map(|z| 1.0 - z.tanh().powi(2))
        .collect();
    out += &format!("   1 − tanh²(z) = {expect:.4?}\n");

    let dz_dx = jacobian(|x| w.matmul(x)?.add(&b), &x)?;
    out += &format!(
        "∂z/∂x for z = Wx + b: shape {:?}, reshaped to 3×4 it is W\n",
        dz_dx.shape()
    );
    out += &matrix(&dz_dx.reshape(&[n, m])?)?;
    out += "   W:\n";
    out += &matrix(&w)?;
    let dz_db = jacobian(|b| w.matmul(&x)?.add(b), &b)?;
    out += "∂z/∂b = I\n";
    out += &matrix(&dz_db.reshape(&[n, n])?)?;

    let s_of_w = |w: &Tensor| u.transpose()?.matmul(&w.matmul(&x)?.add(&b)?.tanh()?);
    let ds_db = jacobian(
        |b| u.transpose()?.matmul(&w.matmul(&x)?.add(b)?.tanh()?),
        &b,
    )?;
    out += &format!(
        "∂s/∂b = uᵀ diag(1 − tanh²(z)) = δᵀ: shape {:?}\n",
        ds_db.shape()
    );
    out += &matrix(&ds_db.reshape(&[1, n])?)?;
    let ds_dw = jacobian(s_of_w, &w)?;
    out += &format!(
        "∂s/∂W: the Jacobian is {:?} (one row of {} entries); reshaped to 3×4 it is δxᵀ\n",
        ds_dw.shape(),
        n * m
    );
    out += &matrix(&ds_dw.reshape(&[n, m])?)?;
    let delta = ds_db.reshape(&[n, 1])?;
    out += "   δxᵀ:\n";
    out += &matrix(&delta.matmul(&x.transpose()?)?)?;

    let v = Tensor::from_vec(vec![1.0, 0.0, -1.0], &[n, 1])?;
    let (_, vj) = vjp(|x| w.matmul(x)?.add(&b)?.tanh(), &x, &v)?;
    out += "vjp: vᵀ ∂tanh(Wx + b)/∂x for v = [1, 0, −1]ᵀ\n";
    out += &matrix(&vj.reshape(&[1, m])?)?;
    let e0 = Tensor::from_vec(vec![1.0, 0.0, 0.0, 0.0], &[m, 1])?;
    let (_, jv) = jvp(|x| w.matmul(x)?.add(&b)?.tanh(), &x, &e0)?;
    out += "jvp: ∂tanh(Wx + b)/∂x · e₀ (first column of the Jacobian)\n";
    out += &matrix(&jv.reshape(&[1, n])?)?;
    let s_of_x = |x: &Tensor| u.transpose()?.matmul(&w.matmul(x)?.add(&b)?.tanh()?);
    let h = hessian(s_of_x, &x)?;
    out += &format!("Hessian of s with respect to x: shape {:?}\n", h.shape());
    out += &matrix(&h.reshape(&[m, m])?)?;
    Ok(out)
}

#[allow(dead_code)]
fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}
