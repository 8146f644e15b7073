//! GitHub-flavoured Markdown: tables plus a Mermaid gantt, for a PR comment.

use std::fmt::Write;

use invocation_metrics::InvocationMetric;

use super::data::ReportData;
use crate::tables::{markdown_breakdowns, markdown_cell as cell, markdown_totals};

/// Most invocations drawn in the gantt (GitHub renders big diagrams slowly).
const GANTT_LIMIT: usize = 100;
/// Agents whose retry chains are listed, and chains per agent.
const CHAIN_AGENTS: usize = 10;
const CHAINS_PER_AGENT: usize = 3;
/// Most rows of a group table (a GitHub comment holds at most 65,536 characters).
const TABLE_GROUPS: usize = 50;

/// Renders the report.
pub fn render(data: &ReportData) -> String {
    let mut md = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut md, data);
    crate::format::neutralize_bidi(md)
}

fn write_report(md: &mut String, data: &ReportData) -> std::fmt::Result {
    let agg = &data.aggregate;
    writeln!(md, "# Invocation metrics report\n")?;
    for line in super::coverage_lines(&data.coverage) {
        writeln!(md, "- {}", cell(&line))?;
    }
    writeln!(md)?;
    markdown_totals(md, agg)?;
    writeln!(
        md,
        "| Spent on failed invocations | {} |",
        cell(&super::failed_cost_line(data))
    )?;

    markdown_breakdowns(md, agg, TABLE_GROUPS)?;

    writeln!(md, "\n## Slowest invocations\n")?;
    writeln!(
        md,
        "| agent | phase | task | model | duration | started | outcome |\n|---|---:|---|---|---:|---|---|"
    )?;
    for m in &data.slowest {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&m.agent),
            m.phase,
            cell(m.task_id.as_deref().unwrap_or("—")),
            cell(m.model.as_deref().unwrap_or("—")),
            crate::format::duration_ms(m.duration_ms as f64),
            crate::format::utc_time(&m.timestamp),
            super::outcome(m)
        )?;
    }
    if !data.failures.is_empty() {
        writeln!(md, "\n## Failures\n")?;
        writeln!(
            md,
            "| class | failures | cost | earliest |\n|---|---:|---:|---|"
        )?;
        for f in &data.failures {
            let examples: Vec<String> = f
                .examples
                .iter()
                .map(|m| {
                    format!(
                        "{} · {} · {}",
                        m.agent,
                        m.task_id.as_deref().unwrap_or(&m.invocation_id),
                        crate::format::utc_time(&m.timestamp)
                    )
                })
                .collect();
            writeln!(
                md,
                "| {} | {} | {} | {} |",
                cell(&f.class),
                crate::format::count(f.count),
                crate::format::usd(f.cost),
                cell(&examples.join("; "))
            )?;
        }
    }

    let chains = &data.chains;
    if !chains.is_empty() {
        writeln!(md, "\n## Retry chains\n")?;
        writeln!(
            md,
            "{}; per agent, those that failed for good, then the longest.\n",
            crate::format::counted(data.chain_count, "retried task")
        )?;
        writeln!(
            md,
            "| agent | phase | task | attempts |\n|---|---:|---|---|"
        )?;
        for agent in chains.iter().take(CHAIN_AGENTS) {
            for chain in agent.chains.iter().take(CHAINS_PER_AGENT) {
                writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    cell(&chain.agent),
                    chain.phase,
                    cell(&chain.task_id),
                    cell(&chain.outcomes())
                )?;
            }
            let shown = agent.chains.len().min(CHAINS_PER_AGENT) as u64;
            if agent.retried > shown {
                writeln!(
                    md,
                    "| {} | | …and {} more | |",
                    cell(&agent.agent),
                    agent.retried - shown
                )?;
            }
        }
    }

    writeln!(md, "\n## Timeline\n")?;
    if agg.total_invocations > GANTT_LIMIT as u64 {
        writeln!(
            md,
            "The first {GANTT_LIMIT} of {} invocations.\n",
            agg.total_invocations
        )?;
    }
    writeln!(
        md,
        "```mermaid\ngantt\n    dateFormat x\n    axisFormat %H:%M:%S"
    )?;
    let mut shown: Vec<&InvocationMetric> = data.earliest.iter().take(GANTT_LIMIT).collect();
    shown.sort_by(|a, b| a.agent.cmp(&b.agent).then(a.start_ms().cmp(&b.start_ms())));
    let mut section = None;
    for m in shown {
        if section != Some(m.agent.as_str()) {
            writeln!(md, "    section {}", mermaid(&m.agent))?;
            section = Some(m.agent.as_str());
        }
        let tag = if !m.success {
            "crit, "
        } else if m.attempt > 1 {
            "active, "
        } else {
            ""
        };
        let end = m.end_ms().max(m.start_ms() + 1);
        writeln!(
            md,
            "    {} #{} :{tag}{}, {end}",
            mermaid(m.task_id.as_deref().unwrap_or(&m.invocation_id)),
            m.attempt,
            m.start_ms()
        )?;
    }
    writeln!(md, "```")
}

/// Makes a name safe inside a Mermaid gantt line (its syntax characters removed).
fn mermaid(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ':' | ';' | '#' | '%' | '<' | '>' | '&' | '"' | '`' | '{' | '}' => '_',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(60)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_inert() {
        assert_eq!(cell("<script>|x"), "&lt;script&gt;\\|x");
        assert_eq!(mermaid("a:b;c#d\ne"), "a_b_c_d e");
    }
}
