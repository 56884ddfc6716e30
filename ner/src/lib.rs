//! The window-based named-entity recogniser of the CS224N backprop lecture,
//! on CoNLL-2003, built on the deltagrad engine: CoNLL-2003 reading and
//! fetching, GloVe vectors, window features, training, decoding, the
//! conlleval scorer, a raw-text tokenizer, checkpoints, and the `bench`
//! command. The `deltagrad` binary (`src/main.rs`) is its command line.
//!
//! Layers, bottom first; a module uses only modules of its own layer or
//! below, and the engine (`deltagrad`) is below them all:
//!
//! 1. `files`, `conll`, `conlleval`, `glove`: file formats and file
//!    helpers (bytes to values and back; no tensors).
//! 2. `tokenize`, `fetch`, `datadir`, `lexical`, `document`, `gazetteer`,
//!    `namelists`, `features`, `decode`: raw text to tokens, the
//!    CoNLL-2003 download, which data folder is read (and checked) how,
//!    word shapes and affixes, what a document says of its words, name
//!    lists, words and tags to ids and windows, tag decoding.
//! 3. `net`, `data`, `eval`, `tag`: the network (window scores, optional
//!    CRF); a corpus as engine batches (windows, or whole sentences in
//!    length buckets); scoring a model; tagging raw text with it.
//! 4. `options`, `checkpoint`, `model_io`, `plot`, `rundir`: a run's
//!    settings, what it saves, and the run folder it saves into.
//! 5. `train`.
//! 6. `bench`: the throughput command, which uses only the engine.
//!
//! `src/main.rs` sits on top. `tests/layers.rs` fails on an import against
//! this order.

pub mod bench;
pub mod checkpoint;
pub mod conll;
pub mod conlleval;
pub mod data;
pub mod datadir;
pub mod decode;
pub mod document;
pub mod eval;
pub mod features;
pub mod fetch;
pub mod files;
pub mod gazetteer;
pub mod glove;
pub mod lexical;
pub mod model_io;
pub mod namelists;
pub mod net;
pub mod options;
pub mod plot;
pub mod rundir;
pub mod tag;
pub mod tokenize;
pub mod train;
