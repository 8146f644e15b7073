//! Colour, when a person is reading: `--color auto` (the default) colours a terminal unless
//! `NO_COLOR` is set; `always` and `never` decide outright. Only labels and headers are
//! coloured — what a script parses is the same either way.

use std::io::IsTerminal;
use std::sync::OnceLock;

use crate::args::ColorChoice;

static CHOICE: OnceLock<ColorChoice> = OnceLock::new();

/// Records the `--color` choice (once, at start).
pub fn set(choice: ColorChoice) {
    let _ = CHOICE.set(choice);
}

fn enabled(terminal: bool) -> bool {
    match CHOICE.get().copied().unwrap_or(ColorChoice::Auto) {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// Whether stdout gets colour.
pub fn stdout() -> bool {
    enabled(std::io::stdout().is_terminal())
}

/// Whether stderr gets colour.
pub fn stderr() -> bool {
    enabled(std::io::stderr().is_terminal())
}

/// A stderr label (`error`, `warning`, `note`) with its colon, coloured when stderr is.
pub fn label(kind: &str) -> String {
    if !stderr() {
        return format!("{kind}:");
    }
    let code = match kind {
        "error" => "1;31",
        "warning" => "1;33",
        _ => "1;36",
    };
    format!("\x1b[{code}m{kind}:\x1b[0m")
}
