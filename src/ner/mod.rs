//! Data layer of the NER classifier: CoNLL-2003 reading and fetching, GloVe
//! vectors, window features, decoding, the conlleval scorer and a raw-text
//! tokenizer.

pub mod conll;
pub mod conlleval;
pub mod decode;
pub mod features;
pub mod fetch;
pub mod glove;
pub mod tokenize;
