//! A report or checkpoint write that fails part-way (the file-size limit, RLIMIT_FSIZE,
//! stands in for a full disk) leaves the old file as it was, no temporary file behind, and
//! an error naming the file the caller asked for.

mod common;

use invocation_metrics::{Error, write_file_atomically};

#[test]
fn a_write_that_runs_out_of_space_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, b"the old report").unwrap();

    common::set_file_size_limit(1000);
    let result = write_file_atomically(&path, &[b'x'; 5000]);
    common::set_file_size_limit(libc::RLIM_INFINITY);

    let err = result.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot write {}:", path.display())),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"the old report");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["report.html"], "no temporary file is left behind");
}
