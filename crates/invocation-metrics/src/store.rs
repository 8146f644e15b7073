//! The collector's records in memory, compactly: the names that repeat from record to record
//! (agent, model, tier, error class) are stored once and referred to by number, the ids
//! (invocation and task) are packed end to end in large text blocks, and optional numbers
//! share one presence byte. A record costs less than half of an [`InvocationMetric`] with its
//! own strings; callers get `InvocationMetric`s back, built on demand.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::hashing::{FastHash, IdentityBuild};
use crate::record::{InvocationMetric, Timestamp, refill, refill_optional};

/// Records in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct RecordStore {
    records: Vec<StoredMetric>,
    names: Names,
    ids: Texts,
}

/// One record; see [`InvocationMetric`] for the fields.
#[derive(Debug)]
struct StoredMetric {
    invocation_id: Text,
    task_id: Text,
    agent: Name,
    model: Name,
    tier: Name,
    error_class: Name,
    phase: u32,
    attempt: u32,
    exit_code: i32,
    success: bool,
    output_parsed: bool,
    /// Which of `input_tokens`, `output_tokens`, `cached_tokens` are present (bits 0, 1, 2).
    token_fields: u8,
    duration_ms: u64,
    tokens: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
    cost: f64,
    timestamp: Timestamp,
}

/// A name's number in [`Names`]; [`Name::NONE`] for an absent optional name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Name(u32);

impl Name {
    const NONE: Self = Self(u32::MAX);
}

/// Where a string is in [`Texts`]; [`Text::NONE`] for an absent optional one.
#[derive(Debug, Clone, Copy)]
struct Text {
    block: u32,
    start: u32,
    len: u32,
}

impl Text {
    const NONE: Self = Self {
        block: u32::MAX,
        start: 0,
        len: 0,
    };
}

/// Strings end to end in blocks that are never reallocated (so no copy as they fill, and no
/// per-string allocation).
#[derive(Debug, Default)]
struct Texts {
    blocks: Vec<String>,
}

impl Texts {
    const BLOCK_BYTES: usize = 1 << 20;

    fn push(&mut self, text: &str) -> Text {
        let fits = self
            .blocks
            .last()
            .is_some_and(|b| b.capacity() - b.len() >= text.len());
        if !fits {
            self.blocks
                .push(String::with_capacity(Self::BLOCK_BYTES.max(text.len())));
        }
        let block_index = self.blocks.len() - 1;
        let block = &mut self.blocks[block_index];
        let start = block.len();
        block.push_str(text);
        // Lines are at most 1 MiB and blocks at least that, so offsets fit in 32 bits; the
        // number of blocks would pass 2^32 only beyond 4 PiB of ids.
        Text {
            block: u32::try_from(block_index).unwrap_or(u32::MAX - 1),
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(text.len()).unwrap_or(u32::MAX),
        }
    }

    /// Moves `other`'s blocks after this one's, without copying their text; returns what
    /// to add to the block number of a [`Text`] that pointed into `other`.
    fn append(&mut self, other: Self) -> u32 {
        // The block that was being filled stops growing: give back its spare room.
        if let Some(last) = self.blocks.last_mut() {
            last.shrink_to_fit();
        }
        let offset = u32::try_from(self.blocks.len()).unwrap_or(u32::MAX - 1);
        self.blocks.extend(other.blocks);
        offset
    }

    fn push_optional(&mut self, text: Option<&str>) -> Text {
        text.map_or(Text::NONE, |text| self.push(text))
    }

    fn get(&self, text: Text) -> Option<&str> {
        let block = self.blocks.get(text.block as usize)?;
        block.get(text.start as usize..text.start as usize + text.len as usize)
    }
}

/// The ids a collector has taken, to refuse a second record with the same id: a set of
/// 64-bit hashes (8 bytes an id). When the records are kept, a hash already in the set is
/// confirmed against the stored ids — a scan, but only for a real repeat (an error) or a
/// true collision of two ids' hashes; without the records, the hash decides (two different
/// ids collide with probability about 2^-64 per pair).
///
/// The ids of records a load skipped (those a checkpoint already counts) are taken too, by
/// hash alone: they are in the file, so a record repeating one would be acknowledged and
/// then dropped by every reader.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    hashes: HashSet<u64, IdentityBuild>,
    exact: bool,
    /// Hashes of the ids in the file that no kept record holds.
    skipped: HashSet<u64, IdentityBuild>,
}

impl IdIndex {
    /// An index that confirms repeats against the kept records, or one of hashes alone.
    pub fn new(exact: bool) -> Self {
        Self {
            hashes: HashSet::default(),
            exact,
            skipped: HashSet::default(),
        }
    }

    /// Takes the id whose [`hash64`](crate::hashing::hash64) is `hash`; `false` if it was
    /// taken before. `records` are the kept records, for the exact check.
    pub fn insert(&mut self, hash: u64, id: &str, records: &RecordStore) -> bool {
        if !self.skipped.is_empty() && self.skipped.contains(&hash) {
            return false;
        }
        self.hashes.insert(hash) || (self.exact && !records.ids().any(|taken| taken == id))
    }

    /// Takes the id of a record a load skipped, known by its hash alone.
    pub fn note_skipped(&mut self, hash: u64) {
        self.skipped.insert(hash);
    }

    /// [`insert`](Self::insert) for a record a load takes into memory: an id held only as
    /// skipped (an earlier load's) is its own, not a repeat.
    pub fn insert_loaded(&mut self, hash: u64, id: &str, records: &RecordStore) -> bool {
        self.skipped.remove(&hash);
        self.insert(hash, id, records)
    }

    /// Takes an id known not to be taken (the loader has left repeats out already).
    pub fn note(&mut self, hash: u64) {
        self.skipped.remove(&hash);
        self.hashes.insert(hash);
    }
}

/// Each distinct name once.
#[derive(Debug, Default)]
struct Names {
    by_number: Vec<Arc<str>>,
    numbers: HashMap<Arc<str>, Name, FastHash>,
}

impl Names {
    fn number(&mut self, name: &str) -> Name {
        if let Some(number) = self.numbers.get(name) {
            return *number;
        }
        let number = Name(u32::try_from(self.by_number.len()).unwrap_or(u32::MAX - 1));
        let name: Arc<str> = Arc::from(name);
        self.by_number.push(Arc::clone(&name));
        self.numbers.insert(name, number);
        number
    }

    fn optional_number(&mut self, name: Option<&str>) -> Name {
        name.map_or(Name::NONE, |name| self.number(name))
    }

    fn name(&self, number: Name) -> Option<&str> {
        self.by_number.get(number.0 as usize).map(|name| &**name)
    }
}

impl RecordStore {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn push(&mut self, m: &InvocationMetric) {
        let present = |value: Option<u64>, bit: u8| value.map_or(0, |_| 1 << bit);
        self.records.push(StoredMetric {
            agent: self.names.number(&m.agent),
            model: self.names.optional_number(m.model.as_deref()),
            tier: self.names.optional_number(m.tier.as_deref()),
            error_class: self.names.optional_number(m.error_class.as_deref()),
            invocation_id: self.ids.push(&m.invocation_id),
            task_id: self.ids.push_optional(m.task_id.as_deref()),
            phase: m.phase,
            attempt: m.attempt,
            exit_code: m.exit_code,
            success: m.success,
            output_parsed: m.output_parsed,
            token_fields: present(m.input_tokens, 0)
                | present(m.output_tokens, 1)
                | present(m.cached_tokens, 2),
            duration_ms: m.duration_ms,
            tokens: m.tokens,
            input_tokens: m.input_tokens.unwrap_or(0),
            output_tokens: m.output_tokens.unwrap_or(0),
            cached_tokens: m.cached_tokens.unwrap_or(0),
            cost: m.cost,
            timestamp: m.timestamp,
        });
    }

    /// Moves `other`'s records to the end of this store, leaving out those whose id is already
    /// here (or earlier in `other`: the first one wins). Returns how many were left out.
    pub fn append_unique(&mut self, other: Self) -> u64 {
        let keep: Vec<bool> = {
            // Borrowed ids: the set is gone before anything is moved.
            let mut known: HashSet<&str, FastHash> =
                HashSet::with_capacity_and_hasher(self.len() + other.len(), FastHash::default());
            known.extend(self.ids());
            other.ids().map(|id| known.insert(id)).collect()
        };
        let left_out = keep.iter().filter(|k| !**k).count() as u64;
        if left_out == 0 && self.records.is_empty() {
            *self = other;
        } else {
            self.append_where(other, |i| keep[i]);
        }
        left_out
    }

    /// Moves `other`'s records from position `start` on to the end of this store.
    pub fn append_from(&mut self, other: Self, start: usize) {
        if start == 0 && self.records.is_empty() {
            *self = other;
        } else {
            self.append_where(other, |i| i >= start);
        }
    }

    /// Moves the records of `other` whose position `keep` accepts, renumbering their names
    /// and moving the blocks that hold their ids (those of records left out stay there,
    /// unused: they are rare).
    fn append_where(&mut self, other: Self, keep: impl Fn(usize) -> bool) {
        let renumbered: Vec<Name> = other
            .names
            .by_number
            .iter()
            .map(|name| self.names.number(name))
            .collect();
        let renumber = |name: Name| {
            renumbered
                .get(name.0 as usize)
                .copied()
                .unwrap_or(Name::NONE)
        };
        let block_offset = self.ids.append(other.ids);
        let moved = |text: Text| match text.block {
            u32::MAX => text,
            block => Text {
                block: block + block_offset,
                ..text
            },
        };
        self.records.reserve(other.records.len());
        for (i, mut stored) in other.records.into_iter().enumerate() {
            if !keep(i) {
                continue;
            }
            stored.agent = renumber(stored.agent);
            stored.model = renumber(stored.model);
            stored.tier = renumber(stored.tier);
            stored.error_class = renumber(stored.error_class);
            stored.invocation_id = moved(stored.invocation_id);
            stored.task_id = moved(stored.task_id);
            self.records.push(stored);
        }
    }

    /// The id of the record at `position`.
    pub fn id(&self, position: usize) -> Option<&str> {
        self.ids.get(self.records.get(position)?.invocation_id)
    }

    /// Every record's id, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.records
            .iter()
            .map(|r| self.ids.get(r.invocation_id).unwrap_or_default())
    }

    /// Copies of every record, in order.
    pub fn to_vec(&self) -> Vec<InvocationMetric> {
        let mut all = Vec::with_capacity(self.records.len());
        for stored in &self.records {
            let mut m = InvocationMetric::blank();
            self.fill(stored, &mut m);
            all.push(m);
        }
        all
    }

    /// Lends each record from position `start` on, in order, built in one reused value.
    pub fn visit_from(&self, start: usize, mut visit: impl FnMut(&InvocationMetric)) {
        let mut m = InvocationMetric::blank();
        for stored in self.records.iter().skip(start) {
            self.fill(stored, &mut m);
            visit(&m);
        }
    }

    /// Writes `stored` into `into`, reusing its string buffers.
    fn fill(&self, stored: &StoredMetric, into: &mut InvocationMetric) {
        let tokens = |value: u64, bit: u8| (stored.token_fields & (1 << bit) != 0).then_some(value);
        refill(
            &mut into.invocation_id,
            self.ids.get(stored.invocation_id).unwrap_or_default(),
        );
        refill(
            &mut into.agent,
            self.names.name(stored.agent).unwrap_or_default(),
        );
        refill_optional(&mut into.task_id, self.ids.get(stored.task_id));
        refill_optional(&mut into.model, self.names.name(stored.model));
        refill_optional(&mut into.tier, self.names.name(stored.tier));
        refill_optional(&mut into.error_class, self.names.name(stored.error_class));
        into.phase = stored.phase;
        into.attempt = stored.attempt;
        into.exit_code = stored.exit_code;
        into.success = stored.success;
        into.output_parsed = stored.output_parsed;
        into.duration_ms = stored.duration_ms;
        into.tokens = stored.tokens;
        into.input_tokens = tokens(stored.input_tokens, 0);
        into.output_tokens = tokens(stored.output_tokens, 1);
        into.cached_tokens = tokens(stored.cached_tokens, 2);
        into.cost = stored.cost;
        into.timestamp = stored.timestamp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_comes_back_as_it_went_in() {
        let mut full = InvocationMetric::new(
            "id-1",
            "coder",
            3,
            "2026-11-25T10:00:00.123456789+05:30".parse().unwrap(),
        );
        full.task_id = Some("t".into());
        full.duration_ms = 12;
        full.tokens = 30;
        full.input_tokens = Some(0);
        full.cached_tokens = Some(7);
        full.cost = 0.1 + 0.2;
        full.exit_code = -9;
        full.success = false;
        full.attempt = 2;
        full.output_parsed = true;
        full.model = Some("m".into());
        full.tier = Some("premium".into());
        full.error_class = Some("timeout".into());
        let mut bare = InvocationMetric::new("id-2", "coder", 1, Timestamp::UNIX_EPOCH);
        bare.output_tokens = Some(u64::MAX);
        let records = vec![full.clone(), bare.clone(), full, bare];

        let mut store = RecordStore::default();
        for m in &records {
            store.push(m);
        }
        assert_eq!(store.to_vec(), records);
        let mut visited = Vec::new();
        store.visit_from(1, |m| visited.push(m.clone()));
        assert_eq!(visited, records[1..]);
        assert_eq!(
            store.ids().collect::<Vec<_>>(),
            ["id-1", "id-2", "id-1", "id-2"]
        );
        // "coder", "m", "premium", "timeout": each once.
        assert_eq!(store.names.by_number.len(), 4);

        let mut other = RecordStore::default();
        let mut new = records[0].clone();
        new.invocation_id = "id-3".into();
        new.agent = "reviewer".into();
        for m in [&records[1], &new, &new] {
            other.push(m);
        }
        assert_eq!(store.append_unique(other), 2);
        assert_eq!(store.to_vec()[4], new);
        assert_eq!(store.len(), 5);
    }

    #[test]
    fn stores_joined_part_by_part_keep_every_id_across_moved_blocks() {
        // Ids long enough that each part fills several text blocks.
        let part = |first: usize| {
            let mut store = RecordStore::default();
            let mut records = Vec::new();
            for i in first..first + 3000 {
                let mut m = InvocationMetric::new(
                    format!("{i:0>1000}"),
                    ["a", "b", "c"][i % 3],
                    1,
                    Timestamp::UNIX_EPOCH,
                );
                m.task_id = (i % 2 == 0).then(|| format!("task-{i}"));
                store.push(&m);
                records.push(m);
            }
            (store, records)
        };
        let (mut joined, mut expected) = (RecordStore::default(), Vec::new());
        for (n, start) in [(0, 0), (3000, 10), (6000, 0)] {
            let (store, records) = part(n);
            assert!(store.ids.blocks.len() >= 2);
            joined.append_from(store, start);
            expected.extend_from_slice(&records[start..]);
        }
        assert_eq!(joined.to_vec(), expected);
        // Appending the first part again leaves out every record: all are known.
        assert_eq!(joined.append_unique(part(0).0), 3000);
        assert_eq!(joined.len(), expected.len());
    }

    #[test]
    fn a_record_is_compact() {
        assert!(
            std::mem::size_of::<StoredMetric>() <= 136,
            "{}",
            std::mem::size_of::<StoredMetric>()
        );
    }
}
