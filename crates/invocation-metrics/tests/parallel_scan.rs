//! The parallel, chunked read gives exactly what the plain sequential read gives — same
//! aggregate, same counts, same damaged line numbers — on a file of several chunks with
//! damaged lines, duplicates across chunk boundaries, a line longer than a chunk and a torn
//! tail.

mod common;

use invocation_metrics::{AggregateOptions, Input, MetricsAccumulator, MetricsScan, RecordFilter};

fn generated_file() -> Vec<u8> {
    let mut file = Vec::new();
    for i in 0..40_000u64 {
        file.extend(
            common::metric(format!("r{}", i % 39_000), i)
                .to_json_line()
                .bytes(),
        );
        file.push(b'\n');
        match i {
            7 => file.extend(b"{\"broken\": \n"),
            20_000 => {
                // A line longer than a whole parser chunk.
                file.extend(std::iter::repeat_n(b'x', 9 << 20));
                file.push(b'\n');
            }
            30_000 => file.extend(b"\r\n\n"),
            _ => {}
        }
    }
    file.extend(b"{\"invocationId\":\"torn");
    file
}

#[test]
fn parallel_read_equals_sequential_read() {
    let file = generated_file();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invocations.jsonl");
    std::fs::write(&path, &file).unwrap();
    for filter in [
        RecordFilter::default(),
        RecordFilter {
            agents: vec!["coder".into()],
            ..RecordFilter::default()
        },
    ] {
        let mut sequential = MetricsScan::new(filter.clone());
        let mut expected = MetricsAccumulator::new();
        sequential
            .read(&path.display().to_string(), &file[..], |m| expected.add(&m))
            .unwrap();

        let options = AggregateOptions::default();
        let seq = sequential.finish();
        // The default budget keeps everything in memory here; 4 KB spills every few
        // thousand records, so both passes merge many runs read back from the disk.
        for budget in [None, Some(4096)] {
            let mut parallel = MetricsScan::new(filter.clone());
            if let Some(bytes) = budget {
                parallel = parallel.with_memory_budget(bytes);
            }
            let actual = parallel
                .aggregate_inputs(&[Input::File(path.clone())], |input| Ok(input.open()?.0))
                .unwrap();
            assert_eq!(
                actual.try_finish(&options).unwrap(),
                expected.finish(&options)
            );
            assert_eq!(parallel.finish(), seq, "budget {budget:?}");
        }
        assert_eq!(seq.duplicates, 1000);
        let lines: Vec<u64> = seq.inputs[0].problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [9, 20_003, 40_005]);
        assert!(seq.inputs[0].problems[2].torn_tail);
    }
}

/// The records a fold sees, with the positions it is told.
#[derive(Default)]
struct Seen(Vec<(u64, String)>);

impl invocation_metrics::RecordFold for Seen {
    fn add(&mut self, m: &invocation_metrics::InvocationMetric, index: u64) {
        self.0.push((index, m.invocation_id.clone()));
    }

    fn merge(&mut self, later: Self, offset: u64) {
        self.0
            .extend(later.0.into_iter().map(|(i, id)| (i + offset, id)));
    }
}

#[test]
fn a_fold_sees_the_sequential_records_at_their_positions() {
    let file = generated_file();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invocations.jsonl");
    std::fs::write(&path, &file).unwrap();
    let filter = RecordFilter {
        agents: vec!["coder".into()],
        ..RecordFilter::default()
    };
    // Sequentially: every kept record, numbered among all valid records (repeats and
    // filtered-out ones count), as the fold's positions are.
    let mut expected = Vec::new();
    let mut position = 0;
    let mut ids = std::collections::HashSet::new();
    invocation_metrics::read_records(
        &file[..],
        |_, m| {
            if ids.insert(m.invocation_id.clone()) && filter.matches(&m) {
                expected.push((position, m.invocation_id.clone()));
            }
            position += 1;
        },
        |_| {},
    )
    .unwrap();
    assert!(expected.len() > 5_000);

    let mut scan = MetricsScan::new(filter.clone());
    let seen = scan
        .fold_inputs(
            &[Input::File(path)],
            |input| Ok(input.open()?.0),
            Seen::default,
            Seen::default,
        )
        .unwrap();
    assert_eq!(seen.0, expected);
    assert_eq!(scan.finish().kept, expected.len() as u64);
}

/// The sequential read against a reference written here: in file order, the first record of
/// each id that the filter keeps — over repeats near and far apart, across two inputs.
#[test]
fn sequential_read_hands_on_the_first_of_each_id_in_file_order() {
    let ids = |range: std::ops::Range<u64>| range.map(|i| format!("r{}", (i * 7919) % 997));
    let inputs: Vec<Vec<invocation_metrics::InvocationMetric>> = [0..1500, 1500..2100]
        .into_iter()
        .map(|range| {
            ids(range.clone())
                .zip(range)
                .map(|(id, i)| common::metric(id, i))
                .collect()
        })
        .collect();
    let filter = RecordFilter {
        agents: vec!["coder".into()],
        ..RecordFilter::default()
    };
    let mut seen = std::collections::HashSet::new();
    let (mut expected, mut duplicates, mut filtered_out) = (Vec::new(), 0, 0);
    for m in inputs.iter().flatten() {
        if !seen.insert(m.invocation_id.clone()) {
            duplicates += 1;
        } else if m.agent != "coder" {
            filtered_out += 1;
        } else {
            expected.push(m.to_json_line());
        }
    }

    let mut scan = MetricsScan::new(filter);
    let mut kept = Vec::new();
    for (n, input) in inputs.iter().enumerate() {
        let file: String = input.iter().map(|m| m.to_json_line() + "\n").collect();
        scan.visit(&format!("input {n}"), file.as_bytes(), |m| {
            kept.push(serde_json::to_string(m).unwrap())
        })
        .unwrap();
    }
    let report = scan.finish();
    assert_eq!(kept, expected);
    assert_eq!(
        (report.duplicates, report.filtered_out),
        (duplicates, filtered_out)
    );
    assert!(duplicates > 1000 && !expected.is_empty());
}

/// An input that gives some lines, then fails.
struct FailsAfter(std::io::Cursor<Vec<u8>>);

impl std::io::Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::other("the disk went away")),
            n => Ok(n),
        }
    }
}

/// The records read before an input fails are handed on (and their ids remembered) before
/// the error is returned, as they were when each was handed on at once.
#[test]
fn a_failing_input_hands_on_what_was_read_before_the_error() {
    let lines: String = (0..10)
        .map(|i| common::metric(format!("r{i}"), i).to_json_line() + "\n")
        .collect();
    let mut scan = MetricsScan::new(RecordFilter::default());
    let mut kept = Vec::new();
    let failed = scan.visit(
        "failing",
        FailsAfter(std::io::Cursor::new(lines.clone().into_bytes())),
        |m| kept.push(m.invocation_id.clone()),
    );
    assert!(failed.is_err());
    assert_eq!(kept, (0..10).map(|i| format!("r{i}")).collect::<Vec<_>>());
    // Their ids count as seen: the same lines again are all repeats.
    scan.visit("again", lines.as_bytes(), |m| {
        kept.push(m.invocation_id.clone())
    })
    .unwrap();
    assert_eq!((kept.len(), scan.finish().duplicates), (10, 10));
}

/// Records in thousands of groups (an agent per few records, hundreds of phases, some
/// models, tiers and error classes), over several parser chunks.
fn many_groups_file(records: u64) -> (Vec<u8>, MetricsAccumulator) {
    let mut file = Vec::new();
    let mut expected = MetricsAccumulator::new();
    for i in 0..records {
        let mut m = common::metric(format!("g{i}"), i);
        m.agent = format!("agent-{}", (i * 7919) % (records / 3));
        m.phase = ((i * 31) % 701) as u32;
        m.duration_ms = (i * 7_919) % 400_000;
        m.model = (i % 5 > 0).then(|| format!("model-{}", i % 17));
        m.tier = (i % 3 == 0).then(|| format!("tier-{}", i % 4));
        m.error_class = (i % 11 == 0).then(|| format!("class-{}", i % 6));
        m.attempt = (i % 4) as u32 + 1;
        expected.add(&m);
        file.extend(m.to_json_line().bytes());
        file.push(b'\n');
    }
    (file, expected)
}

/// Where no chunk can hold a repeat (no repeated ids; or every record kept), each worker
/// thread folds every chunk it parses into one accumulator: the result must equal the
/// sequential fold, and so must the per-chunk folds standard input gets.
#[test]
fn worker_folds_over_many_groups_equal_the_sequential_fold() {
    let (file, expected) = many_groups_file(40_000);
    assert!(file.len() > 2 * (4 << 20), "spans several chunks");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invocations.jsonl");
    std::fs::write(&path, &file).unwrap();
    let options = AggregateOptions::default();
    let expected = expected.finish(&options);
    assert!(
        expected.invocations_by_agent.len() == 13_333 && expected.invocations_by_phase.len() == 701
    );
    for (input, keep_duplicates, budget) in [
        (Input::File(path.clone()), false, None),
        (Input::File(path.clone()), true, None),
        (Input::File(path.clone()), false, Some(4096)),
        (Input::Stdin, false, None),
        (Input::Stdin, true, None),
    ] {
        let case = format!("{input:?}, keep duplicates: {keep_duplicates}, budget {budget:?}");
        let mut scan = MetricsScan::new(RecordFilter::default()).keep_duplicates(keep_duplicates);
        if let Some(bytes) = budget {
            scan = scan.with_memory_budget(bytes);
        }
        let total = scan
            .aggregate_inputs(std::slice::from_ref(&input), |_| {
                Ok(Box::new(std::io::Cursor::new(file.clone())))
            })
            .unwrap();
        assert_eq!(total.try_finish(&options).unwrap(), expected, "{case}");
        assert_eq!(scan.finish().kept, 40_000, "{case}");
    }
}

/// An order-free fold that counts how many values were made.
#[derive(Default)]
struct Counted(u64);

impl invocation_metrics::RecordFold for Counted {
    fn add(&mut self, _: &invocation_metrics::InvocationMetric, _: u64) {
        self.0 += 1;
    }

    fn merge(&mut self, later: Self, _: u64) {
        self.0 += later.0;
    }

    const ORDER_FREE: bool = true;
}

/// An order-free fold is made once per worker thread, not once per chunk — except where a
/// chunk may have to be folded again without its repeats (standard input).
#[test]
fn an_order_free_fold_is_made_once_per_worker_not_per_chunk() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (file, _) = many_groups_file(40_000);
    // Chunks are at most 4 MiB.
    let chunks = file.len().div_ceil(4 << 20);
    assert!(chunks > rayon::current_num_threads() || rayon::current_num_threads() > 2);
    for input in [Input::File("unused".into()), Input::Stdin] {
        let made = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&made);
        let mut scan = MetricsScan::new(RecordFilter::default());
        let total = scan
            .fold_inputs(
                std::slice::from_ref(&input),
                |_| Ok(Box::new(std::io::Cursor::new(file.clone()))),
                Counted::default,
                move || {
                    counter.fetch_add(1, Ordering::Relaxed);
                    Counted::default()
                },
            )
            .unwrap();
        assert_eq!(total.0, 40_000, "{input:?}");
        let made = made.load(Ordering::Relaxed);
        let expected = match input {
            Input::Stdin => chunks..=usize::MAX,
            _ => 1..=rayon::current_num_threads(),
        };
        assert!(
            expected.contains(&made),
            "{input:?}: {made} folds for {chunks}+ chunks"
        );
    }
}
