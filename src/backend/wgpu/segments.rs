//! Host side of the deterministic scatter-add: ids are grouped on the host
//! (from the U32 buffer's host copy) so that every output row is summed by
//! one GPU thread per column, in position order, with no float atomics.

use crate::error::{Error, Result};

/// Fails on the first id `>= rows`, like the CPU backend.
pub fn check_ids(op: &'static str, ids: &[u32], rows: usize) -> Result<()> {
    match ids.iter().position(|&i| i as usize >= rows) {
        Some(position) => Err(Error::IdOutOfRange {
            op,
            id: ids[position] as u64,
            position,
            rows,
        }),
        None => Ok(()),
    }
}

/// For `scatter_add`: `order[n]` (positions stably sorted by id) followed
/// by `row_ptr[rows + 1]`, so row r sums positions
/// `order[row_ptr[r]..row_ptr[r + 1]]`. A counting sort: O(n + rows).
pub fn csr(ids: &[u32], rows: usize) -> Result<Vec<u32>> {
    check_ids("scatter_add", ids, rows)?;
    let n = ids.len();
    let mut out = vec![0u32; n + rows + 1];
    let (order, row_ptr) = out.split_at_mut(n);
    for &id in ids {
        row_ptr[id as usize + 1] += 1;
    }
    for r in 0..rows {
        row_ptr[r + 1] += row_ptr[r];
    }
    let mut next: Vec<u32> = row_ptr[..rows].to_vec();
    for (p, &id) in ids.iter().enumerate() {
        let slot = &mut next[id as usize];
        order[*slot as usize] = p as u32;
        *slot += 1;
    }
    Ok(out)
}

/// Layout size of [`segments`] for `n` ids.
pub fn segments_len(n: usize) -> usize {
    1 + n + (n + 1) + n
}

/// For `index_add`: `[n_seg]`, `order[n]`, `seg_start[n + 1]`,
/// `seg_id[n]` (the tails padded with zeros), one segment per distinct id
/// in increasing id order. Touches only the rows that occur (sparse).
pub fn segments(ids: &[u32], rows: usize) -> Result<Vec<u32>> {
    check_ids("index_add", ids, rows)?;
    let n = ids.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    // Stable: equal ids keep position order, which fixes the summation order.
    order.sort_by_key(|&p| ids[p as usize]);
    let mut starts = Vec::with_capacity(n + 1);
    let mut seg_ids = Vec::with_capacity(n);
    for (k, &p) in order.iter().enumerate() {
        let id = ids[p as usize];
        if seg_ids.last() != Some(&id) {
            starts.push(k as u32);
            seg_ids.push(id);
        }
    }
    let n_seg = seg_ids.len();
    starts.push(n as u32);
    let mut out = Vec::with_capacity(segments_len(n));
    out.push(n_seg as u32);
    out.extend_from_slice(&order);
    out.extend_from_slice(&starts);
    out.resize(1 + n + n + 1, 0);
    out.extend_from_slice(&seg_ids);
    out.resize(segments_len(n), 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_is_stable() {
        let ids = [2, 0, 2, 1, 0];
        let c = csr(&ids, 4).unwrap();
        assert_eq!(&c[..5], &[1, 4, 3, 0, 2]);
        assert_eq!(&c[5..], &[0, 2, 3, 5, 5]);
        assert!(csr(&[4], 4).is_err());
    }

    #[test]
    fn segment_layout() {
        let ids = [3, 1, 3];
        let s = segments(&ids, 5).unwrap();
        // n_seg | order | seg_start (n+1) | seg_id (n)
        assert_eq!(s, vec![2, 1, 0, 2, 0, 1, 3, 0, 1, 3, 0]);
        assert_eq!(s.len(), segments_len(3));
        assert!(matches!(
            segments(&[0, 9], 5),
            Err(Error::IdOutOfRange {
                id: 9,
                position: 1,
                ..
            })
        ));
    }
}
