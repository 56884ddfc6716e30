//! Setting a case up on a device: the kind of a [`CaseSpec`] picks its
//! implementation, the sizes pick its shape.

use deltagrad::{Device, Result};

use super::kernels::{MatmulCase, TanhCase};
use super::ner::NerCase;
use super::spec::{Case, CaseSpec, Kind, Sizes};

/// Sets up `spec` at `sizes` on `device` (uploads its inputs and
/// parameters; untimed).
pub fn build(spec: &CaseSpec, sizes: &Sizes, device: &Device) -> Result<Box<dyn Case>> {
    Ok(match spec.kind {
        Kind::Ner { large, step } => Box::new(NerCase::new(sizes.ner(large), step, device)?),
        Kind::Matmul { n, transpose } => {
            Box::new(MatmulCase::new(sizes.matmul(n), transpose, device)?)
        }
        Kind::Tanh { backward } => Box::new(TanhCase::new(sizes.tanh_len, backward, device)?),
    })
}
