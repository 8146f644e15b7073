//! The parallel, chunked read gives exactly what the plain sequential read gives — same
//! aggregate, same counts, same damaged line numbers — on a file of several chunks with
//! damaged lines, duplicates across chunk boundaries, a line longer than a chunk and a torn
//! tail.

mod common;

use invocation_metrics::{AggregateOptions, MetricsAccumulator, MetricsScan, RecordFilter};

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
            .read("file", &file[..], |m| expected.add(&m))
            .unwrap();

        let mut parallel = MetricsScan::new(filter);
        let mut actual = MetricsAccumulator::new();
        parallel.read_into("file", &file[..], &mut actual).unwrap();

        let options = AggregateOptions::default();
        assert_eq!(actual.finish(&options), expected.finish(&options));
        let (seq, par) = (sequential.finish(), parallel.finish());
        assert_eq!(par, seq);
        assert_eq!(seq.duplicates, 1000);
        let lines: Vec<u64> = seq.inputs[0].problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [9, 20_003, 40_005]);
        assert!(seq.inputs[0].problems[2].torn_tail);
    }
}
