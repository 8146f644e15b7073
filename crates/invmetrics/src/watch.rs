//! `watch`: a live view of a fleet, from its metrics file as a collector appends to it.
//!
//! Plain ANSI on the alternate screen (crossterm for raw mode, the size and the keys): one
//! frame a second at most, redrawn in place, `q` quits, a resize redraws. The file is read
//! with the library's [`FileTail`] — only complete lines, so a line being written waits — and
//! a file that shrinks (repaired, truncated, replaced) is read again from the start, saying so.
//! Idle, it costs one `stat` and one key poll a second.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyModifiers};
use crossterm::{cursor, execute, terminal};
use invocation_metrics::{
    FileTail, InvocationMetric, METRICS_FILE_NAME, NewLines, parse_line, pico_to_usd, usd_to_pico,
};

use crate::args::WatchArgs;
use crate::format::{count, duration_ms, percent, terminal_safe, usd, utc_time};

/// Most bytes read per look at the file: a big backlog is read over several frames.
const READ_WINDOW: u64 = 16 << 20;
/// Recent failures and retries listed.
const EVENTS: usize = 8;
/// Records the "slowest recent" list looks among, at most.
const RECENT: usize = 1000;
/// Intervals kept for the parallelism curve, at most (the oldest go first).
const INTERVALS: usize = 200_000;
/// Agents listed (the costliest).
const AGENT_ROWS: usize = 12;

/// `invmetrics watch`.
pub fn run(args: &WatchArgs) -> Result<ExitCode> {
    let path = metrics_path(&args.path);
    let mut live = Live::new(args.window);
    let mut tail = FileTail::new(&path);
    if args.once {
        // What the file holds now: a writer appending faster than this reads would
        // otherwise keep it reading.
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        while live.catch_up(&mut tail)? && live.offset < len {}
        let width = match io::stdout().is_terminal() {
            true => terminal::size().map_or(120, |(w, _)| w as usize),
            false => 120,
        };
        let mut out = io::stdout().lock();
        for line in live.frame(&path, width, None) {
            writeln!(out, "{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !io::stdout().is_terminal() {
        anyhow::bail!("watch draws on a terminal; use --once to print one frame");
    }
    let mut screen = Screen::enter()?;
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    loop {
        let more = live.catch_up(&mut tail)?;
        dirty |= live.changed;
        live.changed = false;
        if dirty && last_draw.is_none_or(|t| t.elapsed() >= args.every.min(Duration::from_secs(1)))
        {
            let (width, height) = terminal::size().unwrap_or((100, 40));
            let frame = live.frame(&path, width as usize, Some(height as usize));
            screen.draw(&frame)?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        // A backlog: read on at once, but still look at the keys.
        let wait = if more { Duration::ZERO } else { args.every };
        if event::poll(wait)? {
            match event::read()? {
                Event::Key(KeyEvent {
                    code: KeyCode::Char('q') | KeyCode::Esc,
                    ..
                }) => break,
                Event::Key(KeyEvent {
                    code: KeyCode::Char('c'),
                    modifiers,
                    ..
                }) if modifiers.contains(KeyModifiers::CONTROL) => break,
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
    drop(screen);
    Ok(ExitCode::SUCCESS)
}

/// A directory's metrics file, or the file itself.
fn metrics_path(given: &std::path::Path) -> PathBuf {
    if given.is_dir() {
        given.join(METRICS_FILE_NAME)
    } else {
        given.to_path_buf()
    }
}

/// The terminal in raw mode on the alternate screen, given back as it was when dropped (on
/// an error too).
struct Screen {
    out: io::Stdout,
}

impl Screen {
    fn enter() -> Result<Self> {
        terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        let mut out = io::stdout();
        execute!(out, terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(Self { out })
    }

    fn draw(&mut self, frame: &[String]) -> io::Result<()> {
        let mut text = String::from("\x1b[H");
        for line in frame {
            text.push_str(line);
            text.push_str("\x1b[K\r\n");
        }
        text.push_str("\x1b[J");
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(self.out, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

#[derive(Debug, Default, Clone)]
struct AgentLive {
    records: u64,
    cost_pico: i128,
    tokens: u64,
    failures: u64,
    retries: u64,
}

/// What the view knows of the file so far.
struct Live {
    window_ms: i64,
    offset: u64,
    records: u64,
    damaged: u64,
    total: AgentLive,
    agents: BTreeMap<String, AgentLive>,
    /// (start, end) of the recent invocations, by end.
    intervals: VecDeque<(i64, i64)>,
    latest_end: i64,
    events: VecDeque<String>,
    recent: VecDeque<InvocationMetric>,
    note: Option<String>,
    changed: bool,
}

impl Live {
    fn new(window: Duration) -> Self {
        Self {
            window_ms: i64::try_from(window.as_millis())
                .unwrap_or(i64::MAX)
                .max(1000),
            offset: 0,
            records: 0,
            damaged: 0,
            total: AgentLive::default(),
            agents: BTreeMap::new(),
            intervals: VecDeque::new(),
            latest_end: i64::MIN,
            events: VecDeque::new(),
            recent: VecDeque::new(),
            note: None,
            changed: true,
        }
    }

    /// Reads what the file gained; `true` when there may be more to read at once.
    fn catch_up(&mut self, tail: &mut FileTail) -> Result<bool> {
        let read = tail
            .read_from(self.offset, READ_WINDOW)
            .with_context(|| format!("cannot read {}", tail.path().display()))?;
        match read {
            NewLines::Nothing => Ok(false),
            NewLines::Shrunk { .. } | NewLines::Replaced => {
                let what = match read {
                    NewLines::Shrunk { len } => format!("shrank to {} bytes", count(len)),
                    _ => "was replaced".to_owned(),
                };
                let note = format!(
                    "the file {what} at {} (repaired or truncated): read again from the start",
                    utc_time(&invocation_metrics::Timestamp::now())
                );
                *self = Self::new(Duration::from_millis(self.window_ms as u64));
                self.note = Some(note);
                Ok(true)
            }
            NewLines::NoNewline { next } => {
                self.damaged += 1;
                self.offset = next;
                self.changed = true;
                Ok(true)
            }
            NewLines::Lines { next } => {
                for line in tail.lines().split(|b| *b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match parse_line(line) {
                        Ok(m) => self.add(m),
                        Err(_) => self.damaged += 1,
                    }
                }
                self.offset = next;
                self.changed = true;
                Ok(true)
            }
        }
    }

    fn add(&mut self, m: InvocationMetric) {
        self.records += 1;
        let cost = usd_to_pico(m.cost);
        let retry = m.attempt > 1;
        for a in [
            &mut self.total,
            self.agents.entry(m.agent.clone()).or_default(),
        ] {
            a.records += 1;
            a.cost_pico += cost;
            a.tokens = a.tokens.saturating_add(m.tokens);
            a.failures += u64::from(!m.success);
            a.retries += u64::from(retry);
        }
        if !m.success || retry {
            let what = match (m.success, &m.error_class) {
                (true, _) => format!("succeeded on attempt {}", m.attempt),
                (false, Some(class)) => format!("failed ({class}), attempt {}", m.attempt),
                (false, None) => {
                    format!("failed (exit code {}), attempt {}", m.exit_code, m.attempt)
                }
            };
            self.events.push_front(format!(
                "{}  {}  {}  {what}",
                utc_time(&m.timestamp),
                m.agent,
                m.task_id.as_deref().unwrap_or(&m.invocation_id)
            ));
            self.events.truncate(EVENTS);
        }
        let end = m.end_ms();
        self.latest_end = self.latest_end.max(end);
        self.intervals.push_back((m.start_ms(), end));
        if self.intervals.len() > INTERVALS {
            self.intervals.pop_front();
        }
        self.recent.push_back(m);
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    /// Invocations that ended in the minute before the latest end.
    fn per_minute(&self) -> usize {
        self.intervals
            .iter()
            .rev()
            .filter(|(_, end)| *end > self.latest_end - 60_000)
            .count()
    }

    /// Invocations running at once over the window before the latest end, in `columns`
    /// steps: for each step the most that ran at the same moment within it (a sparkline),
    /// and the peak. Counted as the aggregate counts its peak parallelism: an invocation
    /// occupies `[start, end)`, so one that ends as another starts is not two at once —
    /// counting every invocation that touches a step instead overstated the peak, more so
    /// the wider the steps (a narrower terminal).
    fn parallelism(&self, columns: usize) -> (String, u64) {
        let counts = self.running_at_once(columns);
        let peak = counts.iter().copied().max().unwrap_or(0);
        (crate::format::bars(&counts), peak)
    }

    /// [`parallelism`](Self::parallelism)'s count for each of `columns` steps.
    fn running_at_once(&self, columns: usize) -> Vec<u64> {
        if self.intervals.is_empty() || columns == 0 {
            return Vec::new();
        }
        let from = self.latest_end - self.window_ms;
        let step = self.window_ms as f64 / columns as f64;
        let column = |t: i64| (((t - from) as f64 / step) as usize).min(columns - 1);
        let mut changes: Vec<(i64, i64)> = self
            .intervals
            .iter()
            .filter(|(start, end)| *end > from && end > start)
            .flat_map(|&(start, end)| [(start, 1), (end, -1)])
            .collect();
        changes.sort_unstable();
        let mut counts = vec![0u64; columns];
        // Between two moments with changes the count is constant: each such stretch of
        // milliseconds raises the columns it spans to its count.
        let mut running = 0i64;
        let mut since = from;
        for moment in changes.chunk_by(|a, b| a.0 == b.0) {
            let time = moment[0].0;
            if time > since {
                if running > 0 {
                    for count in &mut counts[column(since)..=column(time - 1)] {
                        *count = (*count).max(running as u64);
                    }
                }
                since = time;
            }
            running += moment.iter().map(|(_, change)| change).sum::<i64>();
        }
        counts
    }

    /// The frame's lines, each at most `width` characters; `height` limits their number.
    fn frame(&self, path: &std::path::Path, width: usize, height: Option<usize>) -> Vec<String> {
        let rate = self.per_minute() as u64;
        let mut lines = vec![
            format!(
                "invmetrics watch  {}  {} records{}{}",
                path.display(),
                count(self.records),
                if self.damaged > 0 {
                    format!(", {} damaged lines skipped", count(self.damaged))
                } else {
                    String::new()
                },
                if height.is_some() { "   (q quits)" } else { "" }
            ),
            format!(
                "cost {}  tokens {}  failures {} ({})  retries {}  {} finished in the last minute",
                usd(pico_to_usd(self.total.cost_pico)),
                count(self.total.tokens),
                count(self.total.failures),
                percent(if self.records > 0 {
                    self.total.failures as f64 / self.records as f64
                } else {
                    0.0
                }),
                count(self.total.retries),
                count(rate)
            ),
        ];
        if let Some(note) = &self.note {
            lines.push(format!("note: {note}"));
        }
        let columns = width.saturating_sub(2).clamp(10, 120);
        let (spark, peak) = self.parallelism(columns);
        lines.push(String::new());
        lines.push(format!(
            "running at once, last {} to the latest end: peak {peak}",
            duration_ms(self.window_ms as f64)
        ));
        lines.push(format!("|{spark}|"));
        lines.push(String::new());
        lines.push(format!(
            "{:<24} {:>9} {:>12} {:>14} {:>9} {:>8}",
            "agent", "records", "cost", "tokens", "failures", "retries"
        ));
        let mut agents: Vec<(&String, &AgentLive)> = self.agents.iter().collect();
        agents.sort_by(|a, b| b.1.cost_pico.cmp(&a.1.cost_pico).then_with(|| a.0.cmp(b.0)));
        for (name, a) in agents.iter().take(AGENT_ROWS) {
            lines.push(format!(
                "{:<24} {:>9} {:>12} {:>14} {:>9} {:>8}",
                crate::format::shorten_for_terminal(name, 24),
                count(a.records),
                usd(pico_to_usd(a.cost_pico)),
                count(a.tokens),
                count(a.failures),
                count(a.retries)
            ));
        }
        if agents.len() > AGENT_ROWS {
            lines.push(format!("… and {} more agents", agents.len() - AGENT_ROWS));
        }
        lines.push(String::new());
        lines.push("latest failures and retries".into());
        if self.events.is_empty() {
            lines.push("  none yet".into());
        }
        lines.extend(self.events.iter().map(|e| format!("  {e}")));
        lines.push(String::new());
        lines.push(format!(
            "slowest of the last {} records",
            count(self.recent.len() as u64)
        ));
        let mut slowest: Vec<&InvocationMetric> = self.recent.iter().collect();
        slowest.sort_by_key(|m| std::cmp::Reverse(m.duration_ms));
        for m in slowest.iter().take(5) {
            lines.push(format!(
                "  {:>9}  {}  {}  {}",
                duration_ms(m.duration_ms as f64),
                m.agent,
                m.task_id.as_deref().unwrap_or(&m.invocation_id),
                m.model.as_deref().unwrap_or("")
            ));
        }
        if let Some(height) = height {
            lines.truncate(height.saturating_sub(1));
        }
        lines
            .into_iter()
            .map(|l| {
                let safe = terminal_safe(&l).into_owned();
                safe.chars().take(width.max(20)).collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A view of `intervals` (start, end) in a window of `window_ms` ending at the latest end.
    fn live(window_ms: u64, intervals: &[(i64, i64)]) -> Live {
        let mut live = Live::new(Duration::from_millis(window_ms));
        live.intervals = intervals.iter().copied().collect();
        live.latest_end = intervals.iter().map(|(_, end)| *end).max().unwrap_or(0);
        live
    }

    #[test]
    fn one_ending_as_another_starts_is_not_two_at_once() {
        // Twelve workers, each running a hundred invocations back to back: never more than
        // twelve at once, however wide a column is.
        let intervals: Vec<(i64, i64)> = (0..12)
            .flat_map(|worker| (0..100).map(move |i| (i * 1000 + worker, (i + 1) * 1000 + worker)))
            .collect();
        for columns in [1, 7, 60, 118] {
            let (_, peak) = live(100_000, &intervals).parallelism(columns);
            assert_eq!(peak, 12, "{columns} columns");
        }
    }

    /// Each column's count against a count at every millisecond of the window.
    #[test]
    fn each_column_holds_the_most_running_at_one_moment_within_it() {
        let mut seed = 7u64;
        let mut next = |below: i64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % below as u64) as i64
        };
        for _ in 0..50 {
            let intervals: Vec<(i64, i64)> = (0..next(40) + 1)
                .map(|_| {
                    let start = next(5_000) - 1_000;
                    (start, start + next(800))
                })
                .collect();
            let columns = next(30) as usize + 1;
            let view = live(3_000, &intervals);
            let from = view.latest_end - view.window_ms;
            let step = view.window_ms as f64 / columns as f64;
            let mut expected = vec![0u64; columns];
            for t in from..=view.latest_end {
                let column = (((t - from) as f64 / step) as usize).min(columns - 1);
                let running = intervals.iter().filter(|(s, e)| *s <= t && t < *e).count();
                expected[column] = expected[column].max(running as u64);
            }
            assert_eq!(view.running_at_once(columns), expected, "{intervals:?}");
        }
    }
}
