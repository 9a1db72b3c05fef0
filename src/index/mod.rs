//! index: the derived search indexes, rebuilt from the store when in doubt.

pub mod analyzer;
pub mod text;
pub mod vector;
