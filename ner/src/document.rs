//! What the rest of a document says about a word. A window sees five
//! words; the same word elsewhere in the article often settles what the
//! window cannot: `JAPAN` in an all-caps headline is written `Japan` in
//! the text below it, a sentence-initial `Washington` is `George
//! Washington` two sentences later, `Bank` is lowercase when it is no
//! name. These are the "global" features of Chieu and Ng (2002) and the
//! non-local ones of Ratinov and Roth (2009), read from the document's own
//! words only (never from tags), so dev and test documents get them the
//! same way as training ones.
//!
//! For each token, the other occurrences of its lowercased form in the
//! document give two facts:
//! - its **case elsewhere**: written capitalised, written lowercase, both,
//!   or never where case tells anything;
//! - its **place in a name elsewhere**: within a run of two or more
//!   capitalised words, last (a surname, `Washington`), first (`New`),
//!   both or in the middle, or never.
//!
//! Case tells something only away from a sentence's first word and outside
//! headline sentences (most words all-caps), where everything is
//! capitalised. The token itself is left out of its own counts, so a word
//! seen once gets "nothing elsewhere".

use std::collections::HashMap;

/// Classes of case elsewhere: none, capitalised only, lowercase only, both.
const CASES: usize = 4;
/// Classes of place in a name elsewhere: never, last only, first only,
/// other (middle, or both first and last).
const PLACES: usize = 4;
/// Rows of the document-feature table (id 0: padding).
pub const DOC_CLASSES: usize = 1 + CASES * PLACES;

/// How one occurrence reads: its case and its place in a run of
/// capitalised words.
#[derive(Clone, Copy, Default)]
struct Evidence {
    cap: u32,
    lower: u32,
    first: u32,
    last: u32,
    middle: u32,
}

impl Evidence {
    fn add(&mut self, o: Evidence) {
        self.cap += o.cap;
        self.lower += o.lower;
        self.first += o.first;
        self.last += o.last;
        self.middle += o.middle;
    }

    fn minus(self, o: Evidence) -> Evidence {
        Evidence {
            cap: self.cap - o.cap,
            lower: self.lower - o.lower,
            first: self.first - o.first,
            last: self.last - o.last,
            middle: self.middle - o.middle,
        }
    }

    /// The feature id, in `1..DOC_CLASSES`.
    fn id(self) -> u32 {
        let case = match (self.cap > 0, self.lower > 0) {
            (false, false) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (true, true) => 3,
        };
        let place = match (self.first > 0, self.last > 0, self.middle > 0) {
            (false, false, false) => 0,
            (false, true, false) => 1,
            (true, false, false) => 2,
            _ => 3,
        };
        1 + case * PLACES as u32 + place
    }
}

/// Whether the first cased letter is uppercase: `None` for a word without
/// cased letters (`1996`, `,`).
fn starts_upper(word: &str) -> Option<bool> {
    word.chars()
        .find(|c| c.is_uppercase() || c.is_lowercase())
        .map(char::is_uppercase)
}

fn all_upper(word: &str) -> bool {
    let mut cased = word
        .chars()
        .filter(|c| c.is_uppercase() || c.is_lowercase());
    cased.clone().count() >= 2 && cased.all(char::is_uppercase)
}

/// A headline: most of its cased words are all-caps, so case says nothing.
fn is_headline(sentence: &[&str]) -> bool {
    let cased = sentence
        .iter()
        .filter(|w| starts_upper(w).is_some())
        .count();
    let upper = sentence.iter().filter(|w| all_upper(w)).count();
    cased > 0 && 2 * upper > cased
}

/// What each token of `sentence` says about its word (zeros where it says
/// nothing).
fn sentence_evidence(sentence: &[&str]) -> Vec<Evidence> {
    let mut ev = vec![Evidence::default(); sentence.len()];
    if is_headline(sentence) {
        return ev;
    }
    // Position 0 is capitalised by rule, so it neither counts nor opens
    // a run.
    let cap = |i: usize| i > 0 && starts_upper(sentence[i]) == Some(true);
    for (i, e) in ev.iter_mut().enumerate().skip(1) {
        match starts_upper(sentence[i]) {
            Some(true) => e.cap = 1,
            Some(false) => e.lower = 1,
            None => {}
        }
    }
    let mut i = 1;
    while i < sentence.len() {
        if !cap(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < sentence.len() && cap(i) {
            i += 1;
        }
        if i - start >= 2 {
            ev[start].first = 1;
            ev[i - 1].last = 1;
            for e in &mut ev[start + 1..i - 1] {
                e.middle = 1;
            }
        }
    }
    ev
}

/// Feature ids (in `1..DOC_CLASSES`) of every token of every sentence of
/// one document, sentence by sentence.
pub fn document_ids(sentences: &[Vec<&str>]) -> Vec<Vec<u32>> {
    let evidence: Vec<Vec<Evidence>> = sentences.iter().map(|s| sentence_evidence(s)).collect();
    let keys: Vec<Vec<String>> = sentences
        .iter()
        .map(|s| s.iter().map(|w| w.to_lowercase()).collect())
        .collect();
    let mut by_word: HashMap<&str, Evidence> = HashMap::new();
    for (s, ev) in keys.iter().zip(&evidence) {
        for (k, e) in s.iter().zip(ev) {
            by_word.entry(k).or_default().add(*e);
        }
    }
    keys.iter()
        .zip(&evidence)
        .map(|(s, ev)| {
            s.iter()
                .zip(ev)
                .map(|(k, e)| by_word.get(k.as_str()).map_or(1, |all| all.minus(*e).id()))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Vec<Vec<u32>> {
        let sentences: Vec<Vec<&str>> = text
            .split(" | ")
            .map(|s| s.split_whitespace().collect())
            .collect();
        document_ids(&sentences)
    }

    /// The id of (case, place) as documented above.
    fn id(case: u32, place: u32) -> u32 {
        1 + case * PLACES as u32 + place
    }

    #[test]
    fn a_headline_word_reads_its_case_from_the_text() {
        let ids = doc("JAPAN GET LUCKY WIN | Fans in Japan cheered | the bank said");
        // JAPAN: "Japan" mid-sentence below; GET, LUCKY: nothing elsewhere.
        assert_eq!(ids[0], vec![id(1, 0), id(0, 0), id(0, 0), id(0, 0)]);
        // The headline tells the text nothing; "Fans" is sentence-initial.
        assert_eq!(ids[1], vec![id(0, 0); 4]);
        assert_eq!(ids[2], vec![id(0, 0); 3]);
    }

    #[test]
    fn a_word_last_in_a_name_elsewhere_is_marked_last() {
        let ids =
            doc("Washington said so | He met George Washington there | The Bank and the bank");
        // Sentence-initial Washington: capitalised and last in a name below.
        assert_eq!(ids[0][0], id(1, 1));
        // George: first in a name, but seen nowhere else.
        assert_eq!(ids[1][2], id(0, 0));
        // Washington in the name: the other occurrence is sentence-initial.
        assert_eq!(ids[1][3], id(0, 0));
        // "Bank" (initial-capitalised, position 1) and "bank" see each other.
        assert_eq!(ids[2][1], id(2, 0));
        assert_eq!(ids[2][4], id(1, 0));
        // "The" at position 0 sees "the" lowercase.
        assert_eq!(ids[2][0], id(2, 0));
    }

    #[test]
    fn runs_mark_first_middle_and_last() {
        let ids = doc("x New York City y | a New b | c York d | e City f");
        // New: first elsewhere; York: middle; City: last.
        assert_eq!(ids[1][1], id(1, 2));
        assert_eq!(ids[2][1], id(1, 3));
        assert_eq!(ids[3][1], id(1, 1));
        // Words without cased letters and padding-free ids stay in range.
        let ids = doc("1996 , 3-2 | 1996 .");
        assert!(ids.iter().flatten().all(|&i| i == id(0, 0)));
        assert!(ids.iter().flatten().all(|&i| (i as usize) < DOC_CLASSES));
    }
}
