//! pipeline: turn a changed file into searchable pieces.
//!
//! `hash` reads a file and fingerprints it, `extract` turns a document (PDF, notebook,
//! HTML) into text in a bounded child process, `chunk` splits its text into pieces that fit the
//! model (with `context`: where each piece sits among the file's definitions), `embed` (transformer) and `embed_static` (a static model `distil` makes from it) turn chunk texts into vectors. Each stage is a pure function of its input;
//! the engine decides what runs and stores the results.

pub mod chunk;
pub mod context;
pub mod distil;
pub mod embed;
pub mod embed_static;
pub mod extract;
pub mod hash;
pub mod tokens;
