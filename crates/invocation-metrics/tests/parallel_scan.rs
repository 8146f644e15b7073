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
