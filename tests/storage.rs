//! Bounded storage: unused embeddings and old history are collected, the file shrinks back.

mod common;

use std::fs;

use common::Tree;
use serde_json::Value;

fn disk(t: &Tree) -> Value {
    t.status()["disk"].clone()
}

fn edit_round(t: &Tree, round: usize) {
    for f in 0..8 {
        t.write(
            &format!("notes/n{f}.md"),
            format!(
                "Note {f}, revision {round}: the harbour master logs ship {} arriving at dawn.\n",
                f * 100 + round
            ),
        );
    }
}

#[test]
fn an_edit_heavy_day_then_garbage_collection_leaves_the_index_as_small_as_a_fresh_one() {
    let mut t = Tree::new(true);
    let config = t.tmp.path().join("vigil.toml");
    let set_retention = |text: &str| fs::write(&config, text).unwrap();
    set_retention("[retention]\nunused_embeddings = \"24h\"\nhistory_max_rows = 40\n");
    t.env
        .push(("VIGIL_CONFIG".into(), config.to_str().unwrap().into()));

    // An edit-heavy day: every note rewritten 12 times.
    for round in 0..12 {
        edit_round(&t, round);
        t.index();
    }
    let busy = t.status();
    assert_eq!(
        busy["embeddings_cached"],
        8 * 12,
        "inside the grace period every embedding is kept"
    );
    let rows = t.history();
    assert_eq!(rows.len(), 40, "history is capped at history_max_rows");
    // A quick revert reuses the kept embeddings.
    edit_round(&t, 3);
    assert!(t.index().contains("embeddings: 0 computed"));

    // The grace period ends: unused embeddings go and the file is compacted.
    set_retention("[retention]\nunused_embeddings = \"0s\"\nhistory_max_rows = 40\n");
    t.index();
    let after = t.status();
    assert_eq!(
        after["embeddings_cached"], 8,
        "only the embeddings of today's chunks remain"
    );
    t.assert_verified("after garbage collection");

    let fresh = Tree::new(true);
    fs::create_dir_all(fresh.root.join("notes")).unwrap();
    for f in 0..8 {
        fs::copy(
            t.path(&format!("notes/n{f}.md")),
            fresh.root.join(format!("notes/n{f}.md")),
        )
        .unwrap();
    }
    fresh.index();
    let (busy, after, fresh) = (&busy["disk"], disk(&t), disk(&fresh));
    eprintln!("busy {busy}\nafter {after}\nfresh {fresh}");
    let bytes = |v: &Value, k: &str| v[k].as_u64().unwrap();
    let tables = |v: &Value, k: &str| v["store_tables"][k].as_u64().unwrap();
    assert!(bytes(&after, "store_file") < bytes(busy, "store_file"));
    assert_eq!(tables(&after, "vectors"), tables(&fresh, "vectors"));
    // Same live data except the 40 history rows the fresh index does not have yet.
    assert!(
        bytes(&after, "store_file")
            <= bytes(&fresh, "store_file") + tables(&after, "history") + 64 * 1024,
        "after {after}\nfresh {fresh}"
    );
}
