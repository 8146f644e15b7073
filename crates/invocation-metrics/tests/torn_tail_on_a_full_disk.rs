//! Opening a collector on a full disk, when the file ends in a torn line: saving the torn
//! bytes fails, and the open must fail without leaving an empty or partial `.torn-<ms>`
//! copy behind (each failed open left one). The file-size limit (RLIMIT_FSIZE) plays the
//! full disk, as in `write_fault_recovery.rs`.

mod common;

use invocation_metrics::{InvocationMetricsCollector, METRICS_FILE_NAME, TailRepair};

#[test]
fn a_failed_save_of_the_torn_tail_leaves_no_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(METRICS_FILE_NAME);
    let mut content = common::metric("kept", 1).to_json_line().into_bytes();
    content.push(b'\n');
    content.extend_from_slice(&[b'{'; 200]);
    std::fs::write(&path, &content).unwrap();

    common::set_file_size_limit(50);
    for _ in 0..3 {
        let err = InvocationMetricsCollector::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("save the torn tail"), "{err}");
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".torn-"))
        .collect();
    assert!(names.is_empty(), "copies left behind: {names:?}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        content,
        "the file is untouched"
    );

    common::set_file_size_limit(libc::RLIM_INFINITY);
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    assert!(matches!(
        collector.tail_repair(),
        TailRepair::Cut { bytes: 200, .. }
    ));
    assert_eq!(collector.load_from_disk(0).unwrap().loaded, 1);
}
