//! Reading a kernel's inputs: the slot reader, typed views of a buffer,
//! ids checked against their bound.

use std::sync::RwLockReadGuard;

use super::CpuBuffer;
use super::elementwise::Scratch;
use super::gemm::Gemm;
use super::transpose::Stage;
use crate::dtype::HostData;
use crate::error::{Error, Result};

/// A kernel's inputs, by slot.
pub(super) type Reader<'a> = dyn Fn(usize) -> Result<&'a CpuBuffer> + 'a;

/// Typed access to a buffer's contents.
pub(super) trait Typed: Gemm + Scratch + Stage {
    fn slice(d: &HostData) -> Option<&[Self]>;
}
impl Typed for f32 {
    fn slice(d: &HostData) -> Option<&[f32]> {
        match d {
            HostData::F32(v) => Some(v),
            _ => None,
        }
    }
}
impl Typed for f64 {
    fn slice(d: &HostData) -> Option<&[f64]> {
        match d {
            HostData::F64(v) => Some(v),
            _ => None,
        }
    }
}

pub(super) fn floats<'a, T: Typed>(d: &'a HostData, what: &str) -> Result<&'a [T]> {
    T::slice(d).ok_or_else(|| {
        Error::invalid(
            "cpu execute",
            format!(
                "{what}: expected a float buffer of the kernel's dtype, got {}",
                d.dtype()
            ),
        )
    })
}

/// Binds `$name: &[T]` to a slot's contents without copying them (the read
/// guard lives in `$guard` for the rest of the scope).
macro_rules! borrow {
    ($read:expr, $slot:expr, $what:expr => $guard:ident, $name:ident) => {
        let $guard = $read($slot)?.read();
        let $name: &[T] = floats::<T>(&$guard, $what)?;
    };
}

/// The u32 ids of a slot, borrowed from its buffer (no copy per step).
pub(super) struct Ids<'a>(RwLockReadGuard<'a, HostData>);

impl std::ops::Deref for Ids<'_> {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        match &*self.0 {
            HostData::U32(v) => v,
            // `load_ids` let only u32 data through.
            _ => &[],
        }
    }
}

/// u32 ids from `slot`, each checked against `bound`.
pub(super) fn load_ids<'a>(
    read: &Reader<'a>,
    slot: usize,
    what: &str,
    bound: usize,
) -> Result<Ids<'a>> {
    let guard = read(slot)?.read();
    let HostData::U32(v) = &*guard else {
        return Err(Error::invalid(
            "cpu execute",
            format!("{what}: expected u32 ids, got {}", guard.dtype()),
        ));
    };
    if let Some((position, &id)) = v.iter().enumerate().find(|(_, i)| **i as usize >= bound) {
        return Err(Error::IdOutOfRange {
            op: "cpu execute",
            id: id as u64,
            position,
            rows: bound,
        });
    }
    Ok(Ids(guard))
}

pub(super) fn scalar_of<T: Typed>(read: &Reader<'_>, slot: usize) -> Result<T> {
    let g = read(slot)?.read();
    floats::<T>(&g, "upstream gradient")?
        .first()
        .copied()
        .ok_or_else(|| Error::invalid("cpu execute", "empty upstream gradient"))
}

pub(super) use borrow;
