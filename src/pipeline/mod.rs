//! pipeline: turn a changed file into searchable pieces.
//!
//! - `hash` reads a file and fingerprints it;
//! - `extract` turns a document (PDF, notebook, HTML, Word, OpenDocument, EPUB) into text in
//!   a bounded child process;
//! - `chunk` splits text into pieces that fit the model (code along its syntax tree with
//!   `split`), with `context`: where each piece sits among the file's definitions;
//! - `prepare` judges read content: its chunks, or why it is skipped or failed;
//! - `embed` (transformer) and `embed_static` (a static model `distil` makes from it) turn
//!   chunk texts into vectors.
//!
//! Each stage is a pure function of its input; the engine decides what runs and stores the
//! results.

pub mod chunk;
pub mod context;
pub mod distil;
pub mod embed;
pub mod embed_static;
pub mod extract;
pub mod hash;
pub mod prepare;
pub mod split;
pub mod tokens;
