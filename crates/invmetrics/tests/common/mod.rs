//! Helpers shared by the CLI tests.
#![allow(dead_code)]

use std::path::PathBuf;

use assert_cmd::Command;

/// The committed fixtures directory.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `invmetrics`, run from the fixtures directory so paths in its output are short and stable.
pub fn invmetrics() -> Command {
    let mut cmd = Command::cargo_bin("invmetrics").unwrap();
    cmd.current_dir(fixtures());
    // Reports say when they were made: a fixed time keeps them comparable.
    cmd.env("SOURCE_DATE_EPOCH", "1795600000");
    cmd
}

/// Runs `invmetrics` with `args` and returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    outcome(invmetrics().args(args).output().unwrap())
}

/// [`run`] with environment variables set.
pub fn run_with_env(env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut command = invmetrics();
    for (k, v) in env {
        command.env(k, v);
    }
    outcome(command.args(args).output().unwrap())
}

/// [`run`] with `stdin` as the standard input.
pub fn run_with_stdin(args: &[&str], stdin: impl Into<Vec<u8>>) -> (i32, String, String) {
    outcome(invmetrics().args(args).write_stdin(stdin).output().unwrap())
}

/// The fixture file `name`'s bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn outcome(output: std::process::Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A small HTTP/1.1 server on 127.0.0.1 for the OTLP tests: answers each request with the
/// next scripted (status, extra header) — 200 once the script runs out — and keeps every
/// request's headers and body.
pub struct ScriptedReceiver {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
}

/// A request's head (request line and headers) and body.
pub type Request = (String, Vec<u8>);

impl ScriptedReceiver {
    pub fn start(script: Vec<(u16, &'static str)>) -> Self {
        Self::start_replying(script, "{}")
    }

    /// [`start`](Self::start), answering every request with `reply` as its JSON body.
    pub fn start_replying(script: Vec<(u16, &'static str)>, reply: &'static str) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&requests);
        std::thread::spawn(move || {
            let mut script = script.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let (status, extra) = script.next().unwrap_or((200, ""));
                seen.lock().unwrap().push((head, body));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{reply}",
                    reply.len()
                );
            }
        });
        Self { url, requests }
    }

    /// The span ids of every traces request's body, in order, in either encoding.
    pub fn span_ids(&self) -> Vec<String> {
        use prost::Message;
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(head, _)| head.starts_with("POST /v1/traces "))
            .flat_map(|(head, body)| {
                if head.contains("application/x-protobuf") {
                    let request =
                        invocation_metrics::otlp::wire::TracesRequest::decode(&body[..]).unwrap();
                    return request.resource_spans[0].scope_spans[0]
                        .spans
                        .iter()
                        .map(|s| s.span_id.iter().map(|b| format!("{b:02x}")).collect())
                        .collect::<Vec<String>>();
                }
                let body: serde_json::Value = serde_json::from_slice(body).unwrap();
                body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s["spanId"].as_str().unwrap().to_owned())
                    .collect()
            })
            .collect()
    }

    /// Every metrics request (protobuf), decoded, in order.
    pub fn metric_requests(&self) -> Vec<invocation_metrics::otlp::wire::MetricsRequest> {
        use prost::Message;
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(head, _)| head.starts_with("POST /v1/metrics "))
            .map(|(_, body)| {
                invocation_metrics::otlp::wire::MetricsRequest::decode(&body[..]).unwrap()
            })
            .collect()
    }
}
