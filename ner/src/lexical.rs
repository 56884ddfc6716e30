//! What a word's spelling says beyond its vector: its shape class (`Xxxx`,
//! `XX`, `d-d`, …) and its prefixes and suffixes of lengths 1–4. Unknown
//! and rare words have no useful vector, but `-burg`, `Mc-` or `dd-dd`
//! still tell a place, a name or a score.
//!
//! Both map into fixed-size id ranges by hashing (FNV-1a), so that a model
//! needs no stored affix or shape vocabulary and any text maps to valid
//! ids; id 0 is kept for window positions beyond a sentence's edges.

/// Rows of the shape table (id 0: padding).
pub const SHAPE_CLASSES: usize = 512;
/// Rows of the shared affix table (id 0: padding).
pub const AFFIX_CLASSES: usize = 16384;
/// Longest prefix and suffix.
pub const MAX_AFFIX: usize = 4;
/// Affix ids per word: prefixes of lengths 1..=4, then suffixes.
pub const AFFIX_SLOTS: usize = 2 * MAX_AFFIX;

/// FNV-1a over a tag byte and the text, so that equal strings of
/// different kinds (a prefix and a suffix) hash apart.
fn fnv1a(kind: u8, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(kind).chain(text.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// An id in `1..classes` for `text`.
fn bucket(kind: u8, text: &str, classes: usize) -> u32 {
    (1 + fnv1a(kind, text) % (classes as u64 - 1)) as u32
}

/// The word's shape: each character as `X` (uppercase), `x` (other
/// letter), `d` (digit) or itself, runs longer than two cut to two:
/// `Paris` → `Xxx`, `NATO` → `XX`, `1996-08-22` → `dd-dd-dd`.
pub fn shape(word: &str) -> String {
    let mut out = String::new();
    let (mut last, mut run) = ('\0', 0usize);
    for c in word.chars() {
        let s = if c.is_uppercase() {
            'X'
        } else if c.is_alphabetic() {
            'x'
        } else if c.is_ascii_digit() {
            'd'
        } else {
            c
        };
        run = if s == last { run + 1 } else { 1 };
        last = s;
        if run <= 2 {
            out.push(s);
        }
    }
    out
}

/// The shape class id of a word, in `1..SHAPE_CLASSES`.
pub fn shape_id(word: &str) -> u32 {
    bucket(b's', &shape(word), SHAPE_CLASSES)
}

/// The `AFFIX_SLOTS` affix ids of a word, in `1..AFFIX_CLASSES`:
/// lowercased prefixes of lengths 1..=4, then suffixes (case is the
/// capitalization feature's job). A word shorter than a length gives its
/// whole self for that length, marked with the length.
pub fn affix_ids(word: &str) -> [u32; AFFIX_SLOTS] {
    let lower: Vec<char> = word.to_lowercase().chars().collect();
    let mut ids = [0u32; AFFIX_SLOTS];
    for len in 1..=MAX_AFFIX {
        let n = len.min(lower.len());
        let pre: String = lower[..n].iter().collect();
        let suf: String = lower[lower.len() - n..].iter().collect();
        ids[len - 1] = bucket(b'0' + len as u8, &pre, AFFIX_CLASSES);
        ids[MAX_AFFIX + len - 1] = bucket(b'a' + len as u8, &suf, AFFIX_CLASSES);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        for (w, s) in [
            ("Paris", "Xxx"),
            ("NATO", "XX"),
            ("U.S.", "X.X."),
            ("1996-08-22", "dd-dd-dd"),
            ("3-1", "d-d"),
            ("McDonald", "XxXxx"),
            ("house", "xx"),
            (",", ","),
            ("", ""),
        ] {
            assert_eq!(shape(w), s, "{w}");
        }
    }

    #[test]
    fn ids_are_in_range_and_tell_affixes_apart() {
        let a = affix_ids("Hamburg");
        assert!(a.iter().all(|&i| i > 0 && (i as usize) < AFFIX_CLASSES));
        // Same suffixes, other prefixes.
        let b = affix_ids("Strasburg");
        assert_eq!(a[MAX_AFFIX..], b[MAX_AFFIX..]);
        assert_ne!(a[..MAX_AFFIX], b[..MAX_AFFIX]);
        // Case does not matter; a short word fills every length.
        assert_eq!(affix_ids("HAMBURG"), a);
        let short = affix_ids("a");
        assert_ne!(short[0], short[1], "lengths are kept apart");
        assert_eq!(affix_ids(""), affix_ids(""));
        let s = shape_id("Paris");
        assert!(s > 0 && (s as usize) < SHAPE_CLASSES);
        assert_eq!(s, shape_id("Berlin"));
        assert_ne!(s, shape_id("NATO"));
    }
}
