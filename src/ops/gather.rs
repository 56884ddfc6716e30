//! x = Le: the embedding layer. Forward picks rows of a table by id;
//! backward adds each row's gradient back into the table at its id
//! (repeated ids sum), deterministically.

use super::float;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::tensor::Tensor;

/// Ids as data. Ids are checked (and, for scatters, sorted) on the host,
/// so ids computed on the device (`argmax`) are realized and read back
/// once, becoming a new data tensor; data passes through unchanged.
pub(crate) fn ids_as_data(ids: &Tensor) -> Result<Tensor> {
    if ids.dtype() != DType::U32 {
        return Ok(ids.clone());
    }
    let on_host = ids.is_realized()
        && (!ids.device().is_gpu() || ids.node().storage().and_then(|s| s.host_ids()).is_some());
    if on_host {
        return Ok(ids.clone());
    }
    Tensor::from_host(ids.to_host()?, ids.shape(), &ids.device())
}

/// Checks `ids` (u32, realized) against `rows`.
fn check_ids(op: &'static str, ids: &Tensor, rows: usize) -> Result<()> {
    if ids.dtype() != DType::U32 {
        return Err(Error::invalid(
            op,
            format!("ids must be u32, got {}", ids.dtype()),
        ));
    }
    if !ids.is_realized() {
        return Err(Error::invalid(
            op,
            "ids must be data (a realized u32 tensor), not a pending computation",
        ));
    }
    if let Some((position, id)) = ids.first_id_at_least(rows)? {
        return Err(Error::IdOutOfRange {
            op,
            id: id as u64,
            position,
            rows,
        });
    }
    Ok(())
}

impl Tensor {
    /// Rows of a `[rows, dim]` table picked by 1-D u32 `ids`: `[n, dim]`.
    /// Ids computed on the device (`argmax`) are read back to the host
    /// once, like every id tensor; an id `>= rows` is an
    /// [`Error::IdOutOfRange`]. Gradient: g's rows added back into a zero
    /// table at their ids (`scatter_add_rows`; repeated ids sum) for the
    /// table; none for the ids. Optimizers apply such a gradient as a
    /// sparse update.
    pub fn gather_rows(&self, ids: &Tensor) -> Result<Tensor> {
        float("gather", self)?;
        let ids = &ids_as_data(ids)?;
        super::same_device("gather", self, ids)?;
        if self.rank() != 2 || ids.rank() != 1 {
            return Err(Error::shape_detail(
                "gather",
                self.shape(),
                ids.shape(),
                "expected a [rows, dim] table and 1-D ids",
            ));
        }
        check_ids("gather", ids, self.shape()[0])?;
        Ok(Tensor::op(
            Op::Gather,
            vec![self.clone(), ids.clone()],
            vec![ids.shape()[0], self.shape()[1]],
            self.dtype(),
        ))
    }

    /// Embedding lookup in a `[rows, dim]` table: ids of any shape →
    /// `ids.shape + [dim]`. Composed of `gather_rows` and `reshape`; its
    /// gradient is that of the composition: g's rows added into the table
    /// at their ids, none for the ids.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        let flat = if ids.rank() == 1 {
            ids.clone()
        } else {
            ids.reshape(&[ids.numel()])?
        };
        let flat = if flat.is_realized() {
            flat
        } else {
            // A reshape of data is data: give it the same storage.
            ids.detach_reshaped(&[ids.numel()])?
        };
        let mut shape = ids.shape().to_vec();
        shape.push(self.shape().get(1).copied().unwrap_or(0));
        self.gather_rows(&flat)?.reshape(&shape)
    }

    fn detach_reshaped(&self, shape: &[usize]) -> Result<Tensor> {
        let data = self.to_host()?;
        Tensor::from_host(data, shape, &self.device())
    }

    /// `[n, dim]` rows added into a `[rows, dim]` zero table at the `n` u32
    /// `ids` (repeated ids sum, in the order of the ids, so results are
    /// deterministic). Gradient: g's rows at the ids (`gather_rows`) for
    /// `self`; none for the ids.
    pub fn scatter_add_rows(&self, ids: &Tensor, rows: usize) -> Result<Tensor> {
        float("scatter_add", self)?;
        let ids = &ids_as_data(ids)?;
        super::same_device("scatter_add", self, ids)?;
        if self.rank() != 2 || ids.rank() != 1 || ids.shape()[0] != self.shape()[0] {
            return Err(Error::shape_detail(
                "scatter_add",
                self.shape(),
                ids.shape(),
                "expected [n, dim] rows and n ids",
            ));
        }
        check_ids("scatter_add", ids, rows)?;
        Ok(Tensor::op(
            Op::ScatterAdd,
            vec![self.clone(), ids.clone()],
            vec![rows, self.shape()[1]],
            self.dtype(),
        ))
    }
}

pub(crate) fn gather_backward(
    table: &Tensor,
    ids: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    Ok(vec![Some(g.scatter_add_rows(ids, table.shape()[0])?), None])
}

pub(crate) fn scatter_add_backward(
    _src: &Tensor,
    ids: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    Ok(vec![Some(g.gather_rows(ids)?), None])
}
