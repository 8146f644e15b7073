"""The collector across real Python processes, and against the CLI on the same file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import metric
from invocation_metrics import CheckpointStore, InvocationMetricsCollector, LockedError

TESTS = Path(__file__).parent


def run_python(source: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        capture_output=True,
        text=True,
        cwd=TESTS,
        check=False,
    )


def test_a_second_process_cannot_open_a_directory_another_holds(tmp_path):
    probe = """
        import sys
        from invocation_metrics import InvocationMetricsCollector, LockedError
        try:
            InvocationMetricsCollector(sys.argv[1]).close()
            print("opened")
        except LockedError as e:
            print("refused", isinstance(e, OSError), e)
    """
    holder = InvocationMetricsCollector(tmp_path)
    refused = run_python(probe, str(tmp_path))
    assert refused.stdout.startswith("refused True"), refused.stderr
    assert "locked by another collector" in refused.stdout
    with pytest.raises(LockedError):
        InvocationMetricsCollector(tmp_path)
    holder.close()
    assert run_python(probe, str(tmp_path)).stdout.strip() == "opened"


def test_the_seed_resume_flow_across_two_processes(tmp_path):
    first = run_python(
        """
        import json, sys
        from conftest import metric
        from invocation_metrics import CheckpointStore, InvocationMetricsCollector
        store = CheckpointStore(sys.argv[2])
        with InvocationMetricsCollector(sys.argv[1]) as collector:
            for i in range(30):
                collector.record(metric(i))
            saved = collector.save_checkpoint(store, {"completedPhase": 2})
            for i in range(30, 42):
                collector.record(metric(i))
        print(json.dumps(saved))
        """,
        str(tmp_path / "metrics"),
        str(tmp_path / "checkpoints"),
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"metricsCount": 30, "completedPhase": 2}

    checkpoint = CheckpointStore(tmp_path / "checkpoints").load()
    with InvocationMetricsCollector(tmp_path / "metrics") as collector:
        report = collector.load_from_disk(checkpoint["metricsCount"])
        assert (report.skipped, report.loaded, report.missing) == (30, 12, 0)
        assert [m["invocationId"] for m in collector.get_all()] == [f"inv-{i}" for i in range(30, 42)]


@pytest.mark.parametrize("durability", ["always", "periodic", "buffered"])
def test_kill_9_loses_no_acknowledged_record(tmp_path, durability):
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from conftest import metric
                from invocation_metrics import InvocationMetricsCollector
                collector = InvocationMetricsCollector(sys.argv[1], durability=sys.argv[2])
                i = 0
                while True:
                    collector.record(metric(i))
                    if i % 10 == 9:
                        collector.flush()
                        # One write per line: with PYTHONUNBUFFERED, print() writes each
                        # piece separately, and a kill between them tears the line.
                        sys.stdout.write(f"ACK {i}\\n")
                        sys.stdout.flush()
                    i += 1
                """
            ),
            str(tmp_path),
            durability,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=TESTS,
    )
    acked = -1
    for line in child.stdout:
        acked = int(line.split()[1])
        if acked >= 2000:
            break
    child.send_signal(signal.SIGKILL)
    # Killed by the signal, not dead before it (a child that never ran acknowledges nothing
    # and would pass the checks below vacuously).
    assert child.wait() == -signal.SIGKILL
    assert acked >= 2000
    for line in child.stdout:  # acknowledgements printed before the kill count too
        if line.endswith("\n"):  # a line the kill cut short acknowledged nothing
            acked = int(line.split()[1])

    with InvocationMetricsCollector(tmp_path) as collector:
        report = collector.load_from_disk()
        assert report.malformed == 0
        ids = [m["invocationId"] for m in collector.get_all()]
    assert len(ids) > acked
    assert ids == [f"inv-{i}" for i in range(len(ids))]


def invmetrics() -> str:
    """The CLI binary: $INVMETRICS_BIN, else the workspace's debug build, else PATH."""
    candidates = [os.environ.get("INVMETRICS_BIN"), str(TESTS.parents[2] / "target" / "debug" / "invmetrics")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("invmetrics")
    if found is None:
        pytest.fail("the invmetrics binary is needed: cargo build -p invmetrics, or set INVMETRICS_BIN")
    return found


def test_compute_aggregate_equals_the_cli_summary_on_the_same_file(tmp_path):
    with InvocationMetricsCollector(tmp_path, bucket_width_ms=60_000) as collector:
        for i in range(500):
            retry = i % 7 == 0
            collector.record(
                metric(
                    i,
                    attempt=2 if retry else 1,
                    tier="premium" if i % 11 == 0 else "normal",
                    errorClass="timeout" if i % 13 == 0 else None,
                    cachedTokens=i % 50,
                )
                if not (i % 13 == 0)
                else metric(i, errorClass="timeout", success=False, exitCode=1)
            )
        ours = collector.compute_aggregate()
    cli = subprocess.run(
        [invmetrics(), "summary", "--json", "--bucket", "1m", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ours == json.loads(cli.stdout)
