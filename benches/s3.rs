//! Polling an object-storage root: the corpus of benches/index.rs uploaded to a real
//! S3-compatible server on loopback (moto, as in tests/s3), then indexed and polled through
//! the same code as `vigil watch`.
//!
//! Run with `cargo bench --bench s3` (or `just bench`). Prints one line per figure, with
//! units. The server is Python: its time per request dominates, so read the figures as
//! "what vigil asks of the server" (requests, bytes) more than as vigil's own speed.

mod common;
#[allow(dead_code)]
#[path = "../tests/s3/moto.rs"]
mod moto;

use std::time::{Duration, Instant};

use common::{corpus_files, per_sec};
use vigil::engine::{Engine, EngineConfig, ReconcileStats};
use vigil::s3::S3Options;

/// One poll of the bucket root, driven as `vigil index` drives it.
fn poll(engine: &mut Engine) -> (ReconcileStats, vigil::s3::poll::PollStats, Duration) {
    let mut stats = ReconcileStats::default();
    let mut polled = None;
    let t = Instant::now();
    let errors = engine
        .poll_remotes_once(&mut stats, |first| polled = first.outcome.clone().ok())
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    (stats, polled.expect("the root was polled"), t.elapsed())
}

fn main() {
    let Some(files) = corpus_files() else {
        eprintln!("bench skipped: no cargo registry sources found");
        return;
    };
    let bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let count = files.len() as u64;
    let tmp = tempfile::tempdir().unwrap();
    let server = moto::Moto::start(tmp.path(), "bench");
    let t = Instant::now();
    server.put_many(
        files
            .iter()
            .map(|(k, b)| (format!("corpus/{k}"), b.clone()))
            .collect(),
    );
    println!(
        "corpus: {count} objects, {:.1} MiB, uploaded in {:.1} s",
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    // SAFETY: set before any other thread of this process reads the environment.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", &server.key_id);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", &server.secret);
    }
    let root = std::path::PathBuf::from("s3://bench/corpus");
    for downloads in [1, 4, 16] {
        let options = S3Options {
            endpoint: Some(server.endpoint.clone()),
            downloads,
            ..Default::default()
        };
        let mut engine = Engine::open(EngineConfig {
            retention: Default::default(),
            embed_budget: Default::default(),
            documents: Default::default(),
            index_dir: tmp.path().join(format!("index-{downloads}")),
            roots: vec![vigil::config::RootSpec::plain(root.clone())],
            max_file_size: 10 * 1024 * 1024,
            model: None,
            static_model: None,
            s3: options.clone(),
        })
        .unwrap();
        let gets = server.object_gets();
        let (stats, polled, d) = poll(&mut engine);
        println!(
            "cold poll, {downloads} downloads at once: {:.2} s, {:.0} objects/s, {:.1} MiB/s ({} downloaded, {} server GETs, {} chunks)",
            d.as_secs_f64(),
            per_sec(polled.listed, d),
            per_sec(polled.downloaded_bytes, d) / 1048576.0,
            polled.downloaded,
            server.object_gets() - gets,
            stats.chunks_added
        );
        if downloads != 4 {
            continue;
        }
        let (gets, lists) = (server.object_gets(), server.listings());
        let (_, polled, d) = poll(&mut engine);
        println!(
            "no-op poll: {:.1} ms, {:.0} objects/s ({} unchanged, {} server GETs, {} listing requests)",
            d.as_secs_f64() * 1e3,
            per_sec(polled.listed, d),
            polled.unchanged,
            server.object_gets() - gets,
            server.listings() - lists
        );
        // Everything uploaded again, byte for byte: new Last-Modified, same content hash.
        server.put_many(
            files
                .iter()
                .map(|(k, b)| (format!("corpus/{k}"), b.clone()))
                .collect(),
        );
        let (stats, polled, d) = poll(&mut engine);
        println!(
            "re-upload-all poll (download and hash, no re-chunk): {:.2} s, {:.1} MiB/s ({} touched, {} chunks added)",
            d.as_secs_f64(),
            per_sec(polled.downloaded_bytes, d) / 1048576.0,
            stats.touched,
            stats.chunks_added
        );
    }
}
