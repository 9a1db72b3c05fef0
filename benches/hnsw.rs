//! HNSW recall against exact search, and insert time, for several `expansion_add` values, on
//! the static-tier vectors of a real index (build one with `vigil --index DIR --embed static
//! index TREE`).
//!
//! Run with `HNSW_INDEX=DIR cargo bench --bench hnsw`; `HNSW_QUERIES` (default 200) chunk
//! vectors are the queries, each one's own chunk left out of both answers. Prints recall@10
//! (the share of the exact top 10 that the graph returns) and build time per value.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use vigil::index::vector::VectorIndex;
use vigil::settings::Tier;
use vigil::store::Store;

fn main() {
    let Some(dir) = std::env::var_os("HNSW_INDEX") else {
        eprintln!("bench skipped: set HNSW_INDEX to an index built with --embed static");
        return;
    };
    let queries: usize = std::env::var("HNSW_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let store = Store::open_read_only(std::path::Path::new(&dir)).unwrap();
    let mut id_of: HashMap<[u8; 32], u64> = HashMap::new();
    store
        .for_each_chunk(|id, c| {
            id_of.entry(c.hash).or_insert(id);
        })
        .unwrap();
    let mut items: Vec<(u64, Vec<f32>)> = Vec::new();
    store
        .for_each_vector(Tier::Static, |hash, v| {
            if let Some(&id) = id_of.get(hash) {
                items.push((id, v));
            }
        })
        .unwrap();
    let dims = items.first().map(|(_, v)| v.len()).expect("static vectors");
    println!("{} static vectors of {dims} dims", items.len());
    let unit: Vec<Vec<f32>> = items
        .iter()
        .map(|(_, v)| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter().map(|x| x / n).collect()
        })
        .collect();
    let step = (items.len() / queries).max(1);
    let picks: Vec<usize> = (0..items.len()).step_by(step).take(queries).collect();
    let exact: Vec<HashSet<u64>> = picks
        .iter()
        .map(|&q| {
            let mut scored: Vec<(f32, u64)> = unit
                .iter()
                .zip(&items)
                .filter(|(_, (id, _))| *id != items[q].0)
                .map(|(u, (id, _))| (u.iter().zip(&unit[q]).map(|(a, b)| a * b).sum(), *id))
                .collect();
            scored.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
            scored[..10].iter().map(|(_, id)| *id).collect()
        })
        .collect();
    for expansion in [128, 64, 32] {
        let index = VectorIndex::new(dims).unwrap();
        index.set_expansion_add(expansion);
        let t = Instant::now();
        for batch in items.chunks(4096) {
            let refs: Vec<(u64, &[f32])> =
                batch.iter().map(|(id, v)| (*id, v.as_slice())).collect();
            index.add_many(&refs).unwrap();
        }
        let built = t.elapsed();
        let mut found = 0;
        for (&q, truth) in picks.iter().zip(&exact) {
            let own = items[q].0;
            let hits = index.search(&items[q].1, 11, |id| id != own).unwrap();
            found += hits
                .iter()
                .take(10)
                .filter(|h| truth.contains(&h.chunk_id))
                .count();
        }
        println!(
            "expansion_add {expansion}: built in {:.1} s, recall@10 {:.3} over {} queries",
            built.as_secs_f64(),
            found as f64 / (10 * picks.len()) as f64,
            picks.len()
        );
    }
}
