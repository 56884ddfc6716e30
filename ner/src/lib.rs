//! The window-based named-entity recogniser of the CS224N backprop lecture,
//! on CoNLL-2003, built on the deltagrad engine: CoNLL-2003 reading and
//! fetching, GloVe vectors, window features, training, decoding, the
//! conlleval scorer, a raw-text tokenizer, checkpoints, and the `bench`
//! command. The `deltagrad` binary (`src/main.rs`) is its command line.

pub mod bench;
pub mod checkpoint;
pub mod conll;
pub mod conlleval;
pub mod data;
pub mod decode;
pub mod eval;
pub mod features;
pub mod fetch;
pub mod files;
pub mod glove;
pub mod model_io;
pub mod options;
pub mod plot;
pub mod tokenize;
pub mod train;
