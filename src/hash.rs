//! A fast hasher for the maps a training step fills every step: node ids
//! while gathering and differentiating the graph, and the plan cache's
//! structural keys (a few hundred words each).
//!
//! std's default (SipHash) resists keys chosen to collide, which these
//! maps never see: ids come from a counter, plan keys from the program's
//! own graph. Word at a time, rotate, xor and multiply (the hash rustc
//! uses for its own tables) costs a few cycles a word instead.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A `HashSet` with [`FastHasher`].
pub(crate) type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// See the module's documentation.
#[derive(Clone, Copy, Default)]
pub(crate) struct FastHasher(u64);

/// An odd constant with bits spread over the word (2⁶⁴ / φ).
const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown picks buckets by the low bits and tags by the top 7:
        // fold the well-mixed high half into the low one.
        self.0 ^ (self.0 >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash<T: std::hash::Hash + ?Sized>(v: &T) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(v)
    }

    #[test]
    fn consecutive_ids_spread_over_buckets_and_keys_stay_apart() {
        // Node ids are consecutive: their low bits (the bucket index of a
        // table of 1024) must not collide in bunches.
        let buckets: HashSet<u64> = (0..1024u64).map(|i| hash(&i) & 1023).collect();
        assert!(buckets.len() > 600, "{} of 1024 buckets", buckets.len());
        // Plan keys differing in one word, or in length, hash apart.
        let key: Vec<u64> = (0..300).collect();
        let mut other = key.clone();
        other[150] += 1;
        assert_ne!(hash(&key), hash(&other));
        assert_ne!(hash(&key[..299]), hash(&key));
        assert_ne!(hash(&[1u8, 2][..]), hash(&[1u8, 2, 0][..]));
        // And a map works as one.
        let mut m: FastMap<Vec<u64>, usize> = FastMap::default();
        m.insert(key.clone(), 1);
        m.insert(other.clone(), 2);
        assert_eq!((m[&key], m[&other]), (1, 2));
    }
}
