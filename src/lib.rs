//! vigil keeps a live search index of folders: it watches directory trees, hashes and
//! chunks what changes, and keeps a full-text (BM25) index and an embedding (HNSW) index in
//! step with the disk. See docs/ARCHITECTURE.md for the flow and who owns what.

pub mod api;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod index;
pub mod mcp;
pub mod metrics;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod records;
pub mod s3;
pub mod scan;
pub mod search;
pub mod service;
pub mod settings;
pub mod status;
pub mod store;
pub mod tui;
pub mod verify;
pub mod watch;
