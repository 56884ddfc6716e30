//! Data layer of the NER classifier: CoNLL-2003 reading and fetching, GloVe
//! vectors, window features, decoding, the conlleval scorer and a raw-text
//! tokenizer.

pub mod checkpoint;
pub mod conll;
pub mod conlleval;
pub mod data;
pub mod decode;
pub mod eval;
pub mod features;
pub mod fetch;
pub mod glove;
pub mod model_io;
pub mod plot;
pub mod tokenize;
pub mod train;
