//! pipeline: turn a changed file into searchable pieces.
//!
//! `hash` reads a file and fingerprints it, `chunk` splits its text into pieces that fit the
//! model (with `context`: where each piece sits among the file's definitions), `embed` turns chunk texts into vectors. Each stage is a pure function of its input;
//! the engine decides what runs and stores the results.

pub mod chunk;
pub mod context;
pub mod embed;
pub mod hash;
