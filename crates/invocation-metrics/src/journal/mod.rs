//! The journal: the append-only `invocations.jsonl` file — its reader, its tail recovery
//! and its background writer.
//!
//! # Format
//!
//! UTF-8 JSON Lines: one [`InvocationMetric`](crate::InvocationMetric) object per line, each
//! line ended by `\n`, in the order `record()` was called. Readers tolerate `\r\n` and ignore
//! blank lines.
//!
//! # Damage
//!
//! A crash can leave at most one incomplete line, at the end. Readers skip any line that is
//! not a valid record (reporting its number and why) and read on; a final line without `\n`
//! counts only if it is a valid record. Before appending, a writer repairs the tail: it
//! terminates a valid unterminated last line and cuts an invalid one, saving its bytes beside
//! the file.

mod chunks;
mod reader;
mod recovery;
mod writer;

pub(crate) use chunks::{Chunk, parse_chunks};
pub(crate) use reader::{BOM, InputStart, READ_BUFFER_BYTES, visit_records};
pub use reader::{LineProblem, RawLine, ReadStats, for_each_line, is_blank, read_records};
pub use recovery::TailRepair;
pub(crate) use recovery::{open_for_append, repair_tail};
pub use writer::Durability;
pub(crate) use writer::{Journal, JournalState};
