//! Vectors: the embedding caches of both tiers (keyed by chunk-text hash), their encoding
//! (f32 for the transformer, f16 for the static tier) and the collection of vectors no chunk
//! uses.

use anyhow::Result;

use super::*;

impl Store {
    /// Which of `hashes` already have a cached embedding of `tier`.
    pub fn has_vectors(&self, tier: Tier, hashes: &[[u8; 32]]) -> Result<Vec<bool>> {
        let tx = self.begin_read()?;
        let table = tx.open_table(vector_table(tier))?;
        hashes.iter().map(|h| Ok(table.get(h)?.is_some())).collect()
    }

    /// The cached embedding of `tier` of a chunk text, if any (f32 × dims).
    pub fn vector(&self, tier: Tier, hash: &[u8; 32]) -> Result<Option<Vec<f32>>> {
        let tx = self.begin_read()?;
        let table = tx.open_table(vector_table(tier))?;
        Ok(table.get(hash)?.map(|v| decode(tier, v.value())))
    }

    /// The cached embeddings of `tier` of many chunk texts, in order (`None` where there is
    /// none), read in one transaction.
    pub fn vectors(&self, tier: Tier, hashes: &[[u8; 32]]) -> Result<Vec<Option<Vec<f32>>>> {
        let tx = self.begin_read()?;
        let table = tx.open_table(vector_table(tier))?;
        hashes
            .iter()
            .map(|h| Ok(table.get(h)?.map(|v| decode(tier, v.value()))))
            .collect()
    }

    /// Calls `f(hash, vector)` for every cached embedding of `tier`.
    pub fn for_each_vector(
        &self,
        tier: Tier,
        mut f: impl FnMut(&[u8; 32], Vec<f32>),
    ) -> Result<()> {
        let tx = self.begin_read()?;
        for item in tx.open_table(vector_table(tier))?.iter()? {
            let (k, v) = item?;
            f(k.value(), decode(tier, v.value()));
        }
        Ok(())
    }

    /// Stores embeddings of `tier` (a cache keyed by chunk-text hash) and bumps the
    /// generation.
    pub fn put_vectors(&self, tier: Tier, vectors: &[([u8; 32], Vec<f32>)]) -> Result<()> {
        let tx = self.begin_write()?;
        {
            let mut table = tx.open_table(vector_table(tier))?;
            for (hash, vector) in vectors {
                table.insert(hash, encode(tier, vector).as_slice())?;
            }
            bump(&mut tx.open_table(META)?, GENERATION, 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Drops every cached embedding of `tier` (they belong to another model) and bumps the
    /// generation, so an HNSW snapshot of them is never loaded again.
    pub fn clear_vectors(&self, tier: Tier) -> Result<()> {
        let tx = self.begin_write()?;
        {
            tx.delete_table(vector_table(tier))?;
            tx.open_table(vector_table(tier))?;
            bump(&mut tx.open_table(META)?, GENERATION, 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Garbage collection of embeddings (of both tiers) no chunk uses: marks newly unused
    /// texts with `now_ms`, forgets marks of ones used again, and removes the vectors of
    /// those unused since before `now_ms - grace_ms`. Returns (unused texts kept, removed).
    pub fn collect_unused_vectors(&self, now_ms: u64, grace_ms: u64) -> Result<(u64, u64)> {
        let tx = self.begin_write()?;
        let (mut kept, mut removed) = (0, 0);
        {
            let mut vectors = tx.open_table(VECTORS)?;
            let mut statics = tx.open_table(STATIC_VECTORS)?;
            let by_hash = tx.open_multimap_table(CHUNKS_BY_HASH)?;
            let mut unused = tx.open_table(UNUSED_VECTORS)?;
            let mut seen: Vec<([u8; 32], Option<u64>)> = Vec::new();
            let mut hashes = std::collections::BTreeSet::new();
            for item in vectors.iter()?.chain(statics.iter()?) {
                hashes.insert(*item?.0.value());
            }
            for hash in hashes {
                let used = by_hash.get(&hash)?.next().is_some();
                let since = unused.get(&hash)?.map(|v| v.value());
                if used {
                    if since.is_some() {
                        seen.push((hash, None));
                    }
                } else {
                    seen.push((hash, Some(since.unwrap_or(now_ms))));
                }
            }
            for (hash, since) in seen {
                match since {
                    None => {
                        unused.remove(&hash)?;
                    }
                    Some(t) if now_ms.saturating_sub(t) >= grace_ms => {
                        vectors.remove(&hash)?;
                        statics.remove(&hash)?;
                        unused.remove(&hash)?;
                        removed += 1;
                    }
                    Some(t) => {
                        unused.insert(&hash, t)?;
                        kept += 1;
                    }
                }
            }
        }
        // No generation bump: the HNSW graph holds only vectors of live chunks, so its
        // snapshot stays valid.
        tx.commit()?;
        Ok((kept, removed))
    }
}

/// The table holding a tier's vectors.
fn vector_table(tier: Tier) -> TableDefinition<'static, &'static [u8; 32], &'static [u8]> {
    match tier {
        Tier::Transformer => VECTORS,
        Tier::Static => STATIC_VECTORS,
    }
}

/// f32 slice → little-endian bytes.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes → f32 vector.
pub fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A vector as a tier stores it: transformer vectors as f32 (4 bytes per dim), static ones
/// as f16 (2 bytes per dim: half the store; their cosines move by < 1e-3, far below what
/// separates two hits of a static model).
pub(super) fn encode(tier: Tier, v: &[f32]) -> Vec<u8> {
    match tier {
        Tier::Transformer => encode_vector(v),
        Tier::Static => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
    }
}

pub(super) fn decode(tier: Tier, bytes: &[u8]) -> Vec<f32> {
    match tier {
        Tier::Transformer => decode_vector(bytes),
        Tier::Static => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
    }
}
