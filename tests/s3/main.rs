//! Object-storage roots against a real S3-compatible server on loopback (moto, with IAM
//! authentication enforced): indexing, polling, zero-download unchanged listings, a server
//! that goes away and comes back, and wrong credentials.

#[path = "../common/mod.rs"]
mod common;
mod moto;

use common::{Tree, wait_for};
use moto::Moto;
use serde_json::Value;

const ROOT: &str = "s3://notes/docs";

fn setup() -> (Tree, Moto) {
    let mut t = Tree::new(false);
    let moto = Moto::start(t.tmp.path(), "notes");
    t.env = moto.env();
    (t, moto)
}

fn status(t: &Tree) -> Value {
    serde_json::from_str(&t.ok(&["status", "--json"])).unwrap()
}

/// The status of the (only) object-storage root.
fn remote(t: &Tree) -> Value {
    status(t)["remotes"][0].clone()
}

fn paths(t: &Tree, query: &str) -> Vec<String> {
    t.search(query, &["--mode", "text"])
        .iter()
        .map(|h| h["path"].as_str().unwrap().to_string())
        .collect()
}

/// (kind, path) of the history rows of `path`, newest first.
fn changes_of(t: &Tree, path: &str) -> Vec<String> {
    t.history()
        .iter()
        .filter(|r| r["path"] == path)
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn objects_are_indexed_and_then_followed_by_polling() {
    let (t, moto) = setup();
    moto.put(
        "docs/guide.md",
        "# Guide\n\nThe lighthouse keeper turns the lamp.\n",
    );
    moto.put(
        "docs/code/main.rs",
        "fn main() { println!(\"zebra crossing\"); }\n",
    );
    moto.put("docs/.hidden.md", "a hidden walrus\n");
    moto.put("docs/logo.png", b"\x89PNG\r\n\x1a\n\0\0\0binary".to_vec());
    moto.put("docs/big.txt", "elephant ".repeat(300));
    moto.put("other/outside.md", "an outside narwhal\n");
    // Console "folders": zero-byte `dir/` markers, one sorting after a sibling `code.md`.
    moto.put_raw("docs/", "");
    moto.put_raw("docs/code/", "");
    moto.put("docs/code.md", "the code of conduct mentions a yak\n");
    let summary = t.ok(&["index", ROOT, "--max-file-size", "1K"]);
    assert!(summary.contains("6 scanned, 3 added"), "{summary}");
    assert_eq!(paths(&t, "yak"), ["s3://notes/docs/code.md"]);

    assert_eq!(paths(&t, "lighthouse"), ["s3://notes/docs/guide.md"]);
    assert_eq!(paths(&t, "zebra"), ["s3://notes/docs/code/main.rs"]);
    for hidden in ["walrus", "narwhal", "elephant"] {
        assert!(
            paths(&t, hidden).is_empty(),
            "{hidden} should not be indexed"
        );
    }
    assert_eq!(changes_of(&t, "s3://notes/docs/logo.png"), ["skipped"]);
    assert_eq!(changes_of(&t, "s3://notes/docs/big.txt"), ["skipped"]);
    assert_eq!(changes_of(&t, "s3://notes/docs/guide.md"), ["created"]);

    let w = t.watch_args(&[ROOT, "--max-file-size", "1K", "--poll-interval", "300ms"]);
    // Overwrite: the new words replace the old ones.
    moto.put(
        "docs/guide.md",
        "# Guide\n\nThe harbour master counts ships.\n",
    );
    wait_for("the overwritten object", || paths(&t, "harbour").len() == 1);
    assert!(paths(&t, "lighthouse").is_empty());
    // Delete.
    moto.delete("docs/code/main.rs");
    wait_for("the deleted object to leave", || {
        paths(&t, "zebra").is_empty()
    });
    // Create, in a new "directory".
    moto.put("docs/notes/new.md", "a brand new quokka\n");
    wait_for("the new object", || {
        paths(&t, "quokka") == ["s3://notes/docs/notes/new.md"]
    });
    // The same bytes again, uploaded in parts: another ETag, the same content hash.
    let chunks = status(&t)["chunks"].as_u64().unwrap();
    let downloads = remote(&t)["downloads"].as_u64().unwrap();
    moto.put_multipart(
        "docs/guide.md",
        "# Guide\n\nThe harbour master counts ships.\n",
    );
    wait_for("a touched row", || {
        changes_of(&t, "s3://notes/docs/guide.md")
            .first()
            .map(String::as_str)
            == Some("touched")
    });
    assert_eq!(status(&t)["chunks"].as_u64().unwrap(), chunks);
    assert_eq!(remote(&t)["downloads"].as_u64().unwrap(), downloads + 1);
    assert_eq!(
        changes_of(&t, "s3://notes/docs/guide.md"),
        ["touched", "modified", "created"]
    );
    assert_eq!(
        changes_of(&t, "s3://notes/docs/code/main.rs"),
        ["deleted", "created"]
    );
    t.assert_verified("after polling");
    assert!(w.stop().success());

    // Changed behind vigil's back: verify (which lists and downloads) sees it.
    moto.put("docs/guide.md", "rewritten while nobody watched\n");
    let out = t.run(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let diffs = String::from_utf8_lossy(&out.stdout);
    assert!(
        diffs.contains("s3://notes/docs/guide.md") && diffs.contains("stale"),
        "{diffs}"
    );
}

#[test]
fn an_unchanged_listing_downloads_nothing() {
    let (t, moto) = setup();
    for i in 0..20 {
        moto.put(
            &format!("docs/n{i:02}.md"),
            format!("note number {i} about otters\n"),
        );
    }
    // Configured by file this time.
    let config = t.tmp.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[[roots]]\npath = \"{ROOT}\"\n\n[s3]\nendpoint = \"{}\"\npoll_interval = \"200ms\"\ndownloads = 2\n",
            moto.endpoint
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap().to_string();
    let w = t.watch_args(&["--config", &config_arg]);
    assert_eq!(paths(&t, "otters").len(), 10, "search limit is 10");
    let gets = moto.object_gets();
    assert_eq!(gets, 20, "one download per object");
    let (listings, polls) = (moto.listings(), remote(&t)["polls"].as_u64().unwrap());
    wait_for("three more polls", || {
        remote(&t)["polls"].as_u64().unwrap() >= polls + 3
    });
    assert!(moto.listings() >= listings + 3);
    assert_eq!(
        moto.object_gets(),
        gets,
        "an unchanged listing downloaded objects"
    );
    let r = remote(&t);
    assert_eq!(
        (r["objects"].as_u64(), r["downloads"].as_u64()),
        (Some(20), Some(20))
    );
    // One change costs one download.
    moto.put("docs/n07.md", "note seven now mentions beavers\n");
    wait_for("the change", || paths(&t, "beavers").len() == 1);
    assert_eq!(moto.object_gets(), gets + 1);
    let metrics = std::process::Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(t.index.join("vigil.sock"))
        .arg("http://vigil/metrics")
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(metrics.contains("vigil_s3_downloads_total 21"), "{metrics}");
    assert!(
        metrics.contains("vigil_s3_polls_total{outcome=\"ok\"}"),
        "{metrics}"
    );

    // Saving the configuration reloads it: the pollers restart with the new filters.
    std::fs::write(
        &config,
        format!(
            "[[roots]]\npath = \"{ROOT}\"\ninclude = [\"n0*.md\"]\n\n[s3]\nendpoint = \"{}\"\npoll_interval = \"200ms\"\n",
            moto.endpoint
        ),
    )
    .unwrap();
    wait_for("the filtered-out objects to leave", || {
        status(&t)["files_indexed"] == 10
    });
    assert_eq!(
        moto.object_gets(),
        gets + 1,
        "a reload re-downloaded objects"
    );
    assert!(w.stop().success());
}

#[test]
fn a_folder_and_a_bucket_in_one_watcher() {
    let (t, moto) = setup();
    t.write("local/ferry.md", "the ferry leaves at noon\n");
    moto.put("docs/canal.md", "the canal lock opens at dawn\n");
    let local = t.root.to_str().unwrap().to_string();
    let config = t.tmp.path().join("vigil.toml");
    let write_config = |roots: &[&str]| {
        let roots: String = roots
            .iter()
            .map(|r| format!("[[roots]]\npath = \"{r}\"\n\n"))
            .collect();
        let s3 = format!(
            "[s3]\nendpoint = \"{}\"\npoll_interval = \"200ms\"\n",
            moto.endpoint
        );
        std::fs::write(&config, roots + &s3).unwrap();
    };
    write_config(&[&local, ROOT]);
    let w = t.watch_args(&["--config", config.to_str().unwrap()]);
    assert_eq!(paths(&t, "ferry").len(), 1);
    assert_eq!(paths(&t, "canal"), ["s3://notes/docs/canal.md"]);
    // Both kinds of change arrive in the same process.
    t.write("local/bridge.md", "the bridge swings open\n");
    moto.put("docs/weir.md", "the weir holds the river\n");
    wait_for("both changes", || {
        paths(&t, "bridge").len() == 1 && paths(&t, "weir").len() == 1
    });
    t.assert_verified("a folder and a bucket");

    // The bucket leaves the configuration: its objects leave the index, its poller stops.
    write_config(&[&local]);
    // Objects leave with the reload; the status of the stopped poller follows.
    wait_for("the bucket's objects and poller to leave", || {
        paths(&t, "canal").is_empty() && status(&t)["remotes"].as_array().unwrap().is_empty()
    });
    let listings = moto.listings();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(
        moto.listings(),
        listings,
        "the removed root is still polled"
    );
    assert_eq!(paths(&t, "ferry").len(), 1);
    let removed = changes_of(&t, "s3://notes/docs/weir.md");
    assert_eq!(removed, ["deleted", "created"]);
    assert!(w.stop().success());
}

#[test]
fn objects_are_searched_by_meaning_and_share_the_embedding_cache() {
    let mut t = Tree::new(true);
    let moto = Moto::start(t.tmp.path(), "notes");
    t.env = moto.env();
    let text = "The lighthouse keeper climbs the tower every evening to light the lamp.\n";
    moto.put("docs/keeper.md", text);
    t.ok(&["index", ROOT]);
    let hits = t.search("a beacon on the coast after dark", &["--mode", "semantic"]);
    assert_eq!(hits[0]["path"], "s3://notes/docs/keeper.md");
    // The same text under another key: its embedding comes from the cache.
    moto.put("docs/copy/keeper.md", text);
    t.ok(&["index", ROOT]);
    let row = t
        .history()
        .into_iter()
        .find(|r| r["path"] == "s3://notes/docs/copy/keeper.md")
        .unwrap();
    assert_eq!(
        (row["kind"].as_str(), row["embeddings_reused"].as_u64()),
        (Some("created"), Some(1))
    );
    assert_eq!(row["embeddings_computed"], 0);
}

#[test]
fn a_hung_bucket_never_holds_up_the_folders() {
    let (t, moto) = setup();
    t.write("local/ferry.md", "the ferry leaves at noon\n");
    moto.put("docs/canal.md", "the canal lock opens at dawn\n");
    moto.proxy.hang(true);
    let local = t.root.to_str().unwrap().to_string();
    let w = t.spawn_watch(&[&local, ROOT, "--poll-interval", "300ms"]);
    // The folder is indexed and followed while the bucket's first poll hangs.
    wait_for("the folder", || {
        t.run(&["status", "--json"]).status.success() && paths(&t, "ferry").len() == 1
    });
    t.write("local/bridge.md", "the bridge swings open\n");
    wait_for("a change in the folder", || paths(&t, "bridge").len() == 1);
    let s = status(&t);
    assert_eq!(
        (s["phase"].as_str(), s["ready"].as_bool()),
        (Some("scanning"), Some(false))
    );
    assert_eq!(remote(&t)["state"], "polling");
    // The server answers again: the initial reconcile ends with the bucket in it.
    moto.proxy.hang(false);
    t.wait_watching(&w);
    wait_for("the bucket", || paths(&t, "canal").len() == 1);
    assert_eq!(status(&t)["ready"], true);
    assert!(w.stop().success());
}

#[test]
fn large_listings_are_paged_and_joined_with_the_records() {
    let (t, moto) = setup();
    // More than one listing page (1000 keys) and one page of stored records (1024).
    let objects = (0..1100)
        .map(|i| {
            (
                format!("docs/p/{i:04}.txt"),
                format!("item {i} tag{i}\n").into_bytes(),
            )
        })
        .collect();
    moto.put_many(objects);
    let summary = t.ok(&["index", ROOT]);
    assert!(summary.contains("1100 scanned, 1100 added"), "{summary}");
    // Changes on both sides of the page boundaries.
    for i in [0, 999, 1000, 1001, 1099] {
        moto.delete(&format!("docs/p/{i:04}.txt"));
    }
    for i in [1023, 1024] {
        moto.put(&format!("docs/p/{i:04}.txt"), format!("item {i} changed\n"));
    }
    let summary = t.ok(&["index", ROOT]);
    assert!(
        summary.contains("1095 scanned, 0 added, 2 modified, 5 deleted"),
        "{summary}"
    );
    assert!(summary.contains("1093 unchanged"), "{summary}");
    assert_eq!(status(&t)["files_indexed"], 1095);
    // `tag1000` is also the words `tag` and `1000`: other objects match further down, the
    // deleted ones never.
    assert!(!paths(&t, "tag1000").contains(&"s3://notes/docs/p/1000.txt".to_string()));
    let mut changed = paths(&t, "changed");
    changed.sort();
    assert_eq!(
        changed,
        ["s3://notes/docs/p/1023.txt", "s3://notes/docs/p/1024.txt"]
    );
    assert_eq!(paths(&t, "tag1002")[0], "s3://notes/docs/p/1002.txt");
    t.assert_verified("after a paged poll");
}

#[test]
fn an_object_the_server_fails_on_never_stops_the_others() {
    let (t, moto) = setup();
    moto.put("docs/good.md", "a good mongoose\n");
    moto.put("docs/bad.md", "a bad badger\n");
    let w = t.watch_args(&[ROOT, "--poll-interval", "300ms"]);
    assert_eq!(paths(&t, "badger").len(), 1);
    // The server now fails every download of bad.md (after object_store's own retries).
    moto.proxy
        .fail_requests_for(Some("GET /notes/docs/bad.md "));
    moto.put("docs/bad.md", "a changed badger, now with a ferret\n");
    moto.put("docs/good.md", "a good mongoose and a meerkat\n");
    moto.put("docs/new.md", "a new lemur\n");
    wait_for("the other changes", || {
        paths(&t, "meerkat").len() == 1 && paths(&t, "lemur").len() == 1
    });
    wait_for("the failure in the status", || {
        remote(&t)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("could not be downloaded"))
    });
    // The failing object keeps what was indexed; nothing was deleted.
    assert_eq!(paths(&t, "badger"), ["s3://notes/docs/bad.md"]);
    assert!(paths(&t, "ferret").is_empty());
    // Fixed on the server: the next poll catches up and the status is healthy again.
    moto.proxy.fail_requests_for(None);
    wait_for("the object the server failed on", || {
        paths(&t, "ferret").len() == 1
    });
    wait_for("a healthy status", || remote(&t)["last_error"].is_null());
    assert!(w.stop().success());
}

#[test]
fn the_server_going_away_and_coming_back() {
    let (t, mut moto) = setup();
    moto.put("docs/a.md", "alpha centauri\n");
    let w = t.watch_args(&[ROOT, "--poll-interval", "300ms"]);
    assert_eq!(paths(&t, "alpha").len(), 1);

    moto.proxy.down();
    wait_for("failing polls in the status", || {
        let r = remote(&t);
        r["failures"].as_u64().unwrap_or(0) >= 2 && r["state"] == "backing_off"
    });
    let error = remote(&t)["last_error"].as_str().unwrap().to_string();
    assert!(error.contains("reachable"), "{error}");
    // The rest of vigil keeps working: search answers, nothing was deleted.
    assert_eq!(paths(&t, "alpha").len(), 1);
    moto.put("docs/b.md", "bravo company\n");

    moto.proxy.up();
    wait_for("the object added while away", || {
        paths(&t, "bravo").len() == 1
    });
    wait_for("a healthy status", || {
        let r = remote(&t);
        r["failures"] == 0 && r["last_error"].is_null()
    });
    assert_eq!(paths(&t, "alpha").len(), 1);
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert!(log.contains("backing off"), "{log}");
    assert!(w.stop().success());
}

#[test]
fn wrong_credentials_give_a_clear_error_and_leak_nothing() {
    let (mut t, moto) = setup();
    moto.put("docs/a.md", "alpha\n");
    let secret = "wrong-secret-0123456789";
    t.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), moto.key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
        ("VIGIL_S3_ENDPOINT".into(), moto.endpoint.clone()),
    ];
    let out = t.run(&["index", ROOT]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");
    assert!(stderr.contains("AWS_SECRET_ACCESS_KEY"), "{stderr}");
    assert!(
        !stderr.contains(secret) && !stderr.contains(&moto.key_id),
        "{stderr}"
    );

    t.env[0].1 = "AKIAUNKNOWNKEY123456".into();
    let out = t.run(&["index", ROOT]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("InvalidAccessKeyId"), "{stderr}");
    assert!(!stderr.contains("AKIAUNKNOWNKEY123456"), "{stderr}");

    // A watcher keeps running, shows the error, and logs no credential.
    t.env[0].1 = moto.key_id.clone();
    let w = t.watch_args(&[ROOT, "--poll-interval", "300ms"]);
    let error = remote(&t)["last_error"].as_str().unwrap().to_string();
    assert!(error.contains("SignatureDoesNotMatch"), "{error}");
    wait_for("a retry", || remote(&t)["polls"].as_u64().unwrap() >= 2);
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert!(log.contains("SignatureDoesNotMatch"), "{log}");
    assert!(
        !log.contains(secret) && !log.contains(&moto.key_id),
        "{log}"
    );
    let status = t.ok(&["status"]);
    assert!(!status.contains(secret) && !status.contains(&moto.key_id));
    assert!(w.stop().success());

    // Plain http to a host that is not loopback is refused before anything is sent.
    t.env[2].1 = "http://192.0.2.1:9000".into();
    let out = t.run(&["index", ROOT]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--s3-allow-http"), "{stderr}");
}

#[test]
fn search_with_sync_polls_a_bucket_at_once() {
    let (t, moto) = setup();
    moto.put("docs/a.md", "the first note\n");
    // A poll interval of an hour: only a sync can make a new object searchable soon.
    let w = t.watch_args(&[ROOT, "--poll-interval", "1h"]);
    moto.put("docs/b.md", "the cormorant dives\n");
    assert!(paths(&t, "cormorant").is_empty(), "not polled yet");
    let hits = t.search("cormorant", &["--mode", "text", "--sync"]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["path"], "s3://notes/docs/b.md");
    assert!(w.stop().success());
}
