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

/// Rows of the character table: 0 pads, ASCII characters take 1..=128,
/// any other character hashes into `FIRST_HASHED_CHAR..CHAR_CLASSES`.
pub const CHAR_CLASSES: usize = 256;
const FIRST_HASHED_CHAR: u32 = 129;
/// Characters each filter of the character convolution reads.
pub const CHAR_WIDTH: usize = 3;
/// Character ids per word: a padding position on each side (the
/// convolution reads `CHAR_WIDTH` = 3 at a time), then up to 14
/// characters.
pub const CHAR_SLOTS: usize = 16;
/// Characters kept of a longer word: the first and the last half of them.
const CHARS_KEPT: usize = CHAR_SLOTS - 2;

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

/// The `CHAR_SLOTS` character ids of a word, case kept: padding, the
/// characters (of a word longer than 14, its first 7 and last 7), then
/// padding to the end.
pub fn char_ids(word: &str) -> [u32; CHAR_SLOTS] {
    let chars: Vec<char> = word.chars().collect();
    let kept: Vec<char> = if chars.len() > CHARS_KEPT {
        let half = CHARS_KEPT / 2;
        chars[..half]
            .iter()
            .chain(&chars[chars.len() - half..])
            .copied()
            .collect()
    } else {
        chars
    };
    let mut ids = [0u32; CHAR_SLOTS];
    for (slot, c) in ids[1..].iter_mut().zip(kept) {
        *slot = if c.is_ascii() {
            1 + c as u32
        } else {
            let hashed = CHAR_CLASSES as u64 - u64::from(FIRST_HASHED_CHAR);
            FIRST_HASHED_CHAR + (fnv1a(b'c', c.encode_utf8(&mut [0; 4])) % hashed) as u32
        };
    }
    ids
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
    fn char_ids_pad_both_sides_and_keep_both_ends_of_long_words() {
        let ids = char_ids("Ab");
        assert_eq!(ids[..4], [0, 1 + 'A' as u32, 1 + 'b' as u32, 0]);
        assert!(ids[4..].iter().all(|&i| i == 0));
        let long = char_ids("Internationalisation");
        let want: Vec<u32> = "Internaisation".chars().map(|c| 1 + c as u32).collect();
        assert_eq!(long[1..15], want[..]);
        assert_eq!((long[0], long[15]), (0, 0));
        for id in char_ids("Zürich—Ørsted") {
            assert!((id as usize) < CHAR_CLASSES);
        }
        assert!(char_ids("ü")[1] >= 129);
    }

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
