//! Reading metrics from many places at once — files, metrics directories, directory trees
//! of shards, standard input — de-duplicated by `invocationId` and filtered.

use std::collections::HashSet;
use std::fs::{self, File};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::collector::METRICS_FILE_NAME;
use crate::error::{Error, Result};
use crate::journal::{LineProblem, read_records};
use crate::record::{InvocationMetric, Timestamp};

/// One place records are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-` on a command line).
    Stdin,
    /// A metrics file.
    File(PathBuf),
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdin => f.write_str("<stdin>"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Input {
    /// Opens the input for reading, with its size when known.
    pub fn open(&self) -> Result<(Box<dyn Read>, Option<u64>)> {
        match self {
            Self::Stdin => Ok((Box::new(io::stdin().lock()), None)),
            Self::File(path) => {
                let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
                let size = file.metadata().ok().map(|m| m.len());
                Ok((Box::new(file), size))
            }
        }
    }
}

/// Turns command-line paths into inputs: `-` is stdin, a file is itself, a directory is its
/// `invocations.jsonl`, and with `recursive` every `invocations.jsonl` below it (shards).
pub fn resolve_inputs(paths: &[PathBuf], recursive: bool) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let meta = fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
        if !meta.is_dir() {
            inputs.push(Input::File(path.clone()));
        } else if recursive {
            let before = inputs.len();
            find_metrics_files(path, &mut inputs)?;
            if inputs.len() == before {
                return Err(Error::NoMetrics {
                    path: path.clone(),
                    hint: "no invocations.jsonl anywhere below it",
                });
            }
        } else {
            let file = path.join(METRICS_FILE_NAME);
            if !file.is_file() {
                return Err(Error::NoMetrics {
                    path: path.clone(),
                    hint: "it has no invocations.jsonl (use -r to search subdirectories)",
                });
            }
            inputs.push(Input::File(file));
        }
    }
    Ok(inputs)
}

fn find_metrics_files(dir: &Path, found: &mut Vec<Input>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .filter_map(|entry| entry.ok())
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            find_metrics_files(&path, found)?;
        } else if entry.file_name() == METRICS_FILE_NAME {
            found.push(Input::File(path));
        }
    }
    Ok(())
}

/// Which records to keep. Empty lists keep everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Keep records that started at or after this time.
    pub since: Option<Timestamp>,
    /// Keep records that started before this time.
    pub until: Option<Timestamp>,
    /// Keep only these agents.
    pub agents: Vec<String>,
    /// Keep only these phases.
    pub phases: Vec<u32>,
}

impl RecordFilter {
    /// Whether `m` passes the filter.
    pub fn matches(&self, m: &InvocationMetric) -> bool {
        self.since.is_none_or(|t| m.timestamp >= t)
            && self.until.is_none_or(|t| m.timestamp < t)
            && (self.agents.is_empty() || self.agents.contains(&m.agent))
            && (self.phases.is_empty() || self.phases.contains(&m.phase))
    }
}

/// What one input held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputReport {
    /// The input, for messages.
    pub name: String,
    /// Valid records, duplicates and filtered ones included.
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Invalid lines, with line numbers.
    pub problems: Vec<LineProblem>,
}

/// What a [`MetricsScan`] read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanReport {
    /// Per input, in reading order.
    pub inputs: Vec<InputReport>,
    /// Records handed on (unique and matching the filter).
    pub kept: u64,
    /// Records dropped because their `invocationId` was seen before (the first one wins).
    pub duplicates: u64,
    /// Records dropped by the filter.
    pub filtered_out: u64,
}

impl ScanReport {
    /// Invalid lines over all inputs.
    pub fn problem_count(&self) -> u64 {
        self.inputs.iter().map(|i| i.problems.len() as u64).sum()
    }

    /// Valid records over all inputs, before de-duplication and filtering.
    pub fn valid_records(&self) -> u64 {
        self.inputs.iter().map(|i| i.records).sum()
    }
}

/// Reads inputs one after another, handing on each record whose `invocationId` has not
/// been seen in any earlier input and which passes the filter.
///
/// Ids are remembered as 64-bit hashes (8 bytes per record rather than the whole string);
/// two different ids colliding is about as likely as one in 10^12 for ten million records.
///
/// ```
/// use invocation_metrics::{MetricsScan, RecordFilter};
///
/// let line = br#"{"invocationId":"a","agent":"x","phase":1,"durationMs":1,"tokens":1,"cost":0,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"timestamp":"2026-11-25T10:00:00Z"}"#;
/// let shard = [&line[..], b"\n", &line[..], b"\nnot json\n"].concat();
/// let mut scan = MetricsScan::new(RecordFilter::default());
/// let mut kept = Vec::new();
/// scan.read("shard-1", &shard[..], |m| kept.push(m))?;
/// let report = scan.finish();
/// assert_eq!((kept.len(), report.duplicates, report.problem_count()), (1, 1, 1));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MetricsScan {
    filter: RecordFilter,
    seen: HashSet<u64, BuildHasherDefault<IdentityHasher>>,
    report: ScanReport,
}

impl MetricsScan {
    /// A scan keeping the records `filter` matches.
    pub fn new(filter: RecordFilter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Reads one input to its end.
    pub fn read(
        &mut self,
        name: &str,
        reader: impl Read,
        mut on_record: impl FnMut(InvocationMetric),
    ) -> io::Result<()> {
        let mut input = InputReport {
            name: name.to_owned(),
            ..InputReport::default()
        };
        let ids = BuildHasherDefault::<DefaultHasher>::default();
        let stats = read_records(
            reader,
            |_, metric| {
                if !self.seen.insert(ids.hash_one(&metric.invocation_id)) {
                    self.report.duplicates += 1;
                } else if !self.filter.matches(&metric) {
                    self.report.filtered_out += 1;
                } else {
                    self.report.kept += 1;
                    on_record(metric);
                }
            },
            |problem| input.problems.push(problem),
        )?;
        input.records = stats.records;
        input.bytes = stats.bytes;
        self.report.inputs.push(input);
        Ok(())
    }

    /// The counts so far.
    pub fn report(&self) -> &ScanReport {
        &self.report
    }

    /// Ends the scan.
    pub fn finish(self) -> ScanReport {
        self.report
    }
}

/// The set already holds hashes; hashing them again would only cost time.
#[derive(Debug, Default)]
struct IdentityHasher(u64);

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
