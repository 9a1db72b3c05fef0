# Build an optimised binary.
build:
    cargo build --release

# The test suite (the same command CI runs).
test:
    cargo test --locked

# Fetch the default embedding model and ONNX Runtime into the cache.
model:
    cargo run --release -- model fetch

# Indexing throughput on a real corpus (see benches/).
bench:
    cargo bench --bench index
    cargo bench --bench s3

fmt:
    cargo fmt --all
