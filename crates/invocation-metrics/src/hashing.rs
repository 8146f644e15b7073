//! The project's one choice of hash function, for in-memory sets of names and ids and for the
//! 64-bit keys that stand for ids and attempts in the aggregate's sorted logs.
//!
//! foldhash, because SipHash (std's default) was the biggest single cost of loading a
//! million records. Nothing hashed here is written to disk, so the function may change
//! between versions.

use std::hash::{BuildHasher, BuildHasherDefault, Hash};

/// For hash sets and maps whose every match is confirmed by comparing the keys.
pub(crate) type FastHash = foldhash::fast::RandomState;

/// A 64-bit hash that is the same on every thread of the process, used where the hash
/// itself stands for the value: two different values collide with probability about 2^-64
/// per pair (about one in 10^7 among 10 M values).
pub(crate) fn hash64(value: impl Hash) -> u64 {
    const STATE: foldhash::quality::FixedState =
        foldhash::quality::FixedState::with_seed(0x1d_2026);
    STATE.hash_one(value)
}

/// For sets of [`hash64`] values: they are hashes already, and hashing them again would only
/// cost time.
pub(crate) type IdentityBuild = BuildHasherDefault<IdentityHasher>;

/// Passes a `u64` through as its own hash.
#[derive(Debug, Default)]
pub(crate) struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
