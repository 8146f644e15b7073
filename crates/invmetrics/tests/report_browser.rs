//! The HTML report in a real browser (headless Chromium): it loads without console errors,
//! its charts paint, and a hostile agent name renders as text.

mod common;

use std::path::Path;
use std::process::Command;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|bin| {
            Command::new(bin)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn headless(browser: &str, args: &[&str], page: &Path) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=2000",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap()
}

/// Counts pixels close to `rgb` in a PNG.
fn pixels_near(png_path: &Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|px| px.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 40))
        .count()
}

#[test]
fn report_renders_in_a_real_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium (.ci/run installs it)"
        );
        eprintln!("SKIPPED: no chromium on this machine (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let small = std::fs::read_to_string(common::fixtures().join("small.jsonl")).unwrap();
    let input = dir.path().join("evil.jsonl");
    std::fs::write(
        &input,
        small.replace("\"planner\"", "\"<script>alert(1)</script>\""),
    )
    .unwrap();
    let page = dir.path().join("report.html");
    let (code, _, stderr) = common::run(&[
        "report",
        input.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");

    let dom = headless(browser, &["--dump-dom"], &page);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(
        console.is_empty(),
        "console messages from the report: {console:?}"
    );
    assert!(
        dom_text.contains("Invocation metrics report"),
        "page did not load: {log}"
    );
    assert!(
        !dom_text.contains("<script>alert"),
        "the hostile name became markup"
    );
    assert!(dom_text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(dom_text.matches("<svg").count() >= 9);
    // What a manager looks for first, and what the report covers.
    for section in [
        "Read: ",
        "Generated ",
        "Spent on failed invocations",
        "Cost by model",
        "Cost so far",
        "Slowest invocations",
        "Failures",
        "rate-limit",
        "Retry chains",
        "failed for good",
        "<details",
        "<summary>",
    ] {
        assert!(dom_text.contains(section), "no {section:?} in the page");
    }
    // Every bar and box has a tooltip; the hostile name is escaped inside them too.
    assert!(dom_text.matches("<title>").count() >= 20);
    assert!(dom_text.contains("<title>&lt;script&gt;alert(1)&lt;/script&gt;"));
    // No scripts, no requests out.
    assert!(!dom_text.contains("<script"));
    assert!(!dom_text.contains("src=\"http") && !dom_text.contains("href=\"http"));

    let shot = dir.path().join("report.png");
    let out = headless(
        browser,
        &[
            "--window-size=1100,2600",
            &format!("--screenshot={}", shot.display()),
        ],
        &page,
    );
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The charts painted: the parallelism area and bars in the accent blue, the timeline's
    // green, orange and red bars.
    assert!(
        pixels_near(&shot, [89, 140, 239]) > 2_000,
        "no accent-coloured bars"
    );
    assert!(
        pixels_near(&shot, [0x2e, 0x9e, 0x5b]) > 200,
        "no succeeded bars in the timeline"
    );
    assert!(
        pixels_near(&shot, [0xd6, 0x3c, 0x3c]) > 100,
        "no failed bars in the timeline"
    );
    if let Some(keep) = std::env::var_os("INVMETRICS_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
