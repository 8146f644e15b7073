//! The self-contained HTML report: no scripts, no external requests, every string from the
//! data escaped (maud escapes what it interpolates; plotters escapes chart text).

use anyhow::Result;
use invocation_metrics::{Breakdown, GroupSummary};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::data::{ReportData, TIMELINE_LIMIT};
use super::{CHART_GROUPS, charts, svg};
use crate::format::{
    count, count_tick, counted, duration_ms, usd, usd_places_for, usd_tick, utc_time,
};
use crate::tables::{GROUP_COLUMNS, group_cells, largest_groups, largest_with_rest, totals_rows};

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
main { max-width: 1000px; margin: 0 auto; padding: 24px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { font-size: 18px; margin: 28px 0 10px; }
.sub { color: #5b6475; margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 10px; }
.card { background: #fff; border-radius: 8px; padding: 10px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card .label { color: #5b6475; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 15px; margin-top: 4px; overflow-wrap: break-word; }
.panel { background: #fff; border-radius: 8px; padding: 8px; box-shadow: 0 1px 2px rgba(0,0,0,.08); overflow-x: auto; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.pair h3 { font-size: 14px; margin: 4px 8px; color: #5b6475; }
svg { display: block; max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px; }
th, td { padding: 5px 8px; border-bottom: 1px solid #e6e8ec; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; overflow-wrap: anywhere; min-width: 8em; }
.wide { overflow-x: auto; }
td.chain, th.chain { text-align: left; white-space: normal; }
.legend span { display: inline-block; margin-right: 14px; font-size: 13px; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.note { color: #5b6475; font-size: 13px; }
.coverage { color: #5b6475; font-size: 13px; margin: 0 0 14px; padding: 0; list-style: none; }
.coverage li { margin: 2px 0; overflow-wrap: anywhere; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #2f6feb; font-size: 14px; margin: 6px 0; }
td.left, th.left { text-align: left; }
@media (max-width: 760px) { .pair { grid-template-columns: 1fr; } main { padding: 12px; } }
"#;

/// Renders the whole page.
pub fn render(data: &ReportData) -> Result<String> {
    let agg = &data.aggregate;
    // Agents largest first (which cost the most is the question); phases in their order.
    let by_agent = |f: fn(&GroupSummary) -> f64| -> Vec<(String, f64)> {
        let mut items: Vec<(String, f64)> =
            agg.agents.iter().map(|(k, g)| (k.clone(), f(g))).collect();
        items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        largest_with_rest(items, CHART_GROUPS)
    };
    let by_phase = |f: fn(&GroupSummary) -> f64| -> Vec<(String, f64)> {
        let items = agg
            .phases
            .iter()
            .map(|(k, g)| (format!("phase {k}"), f(g)))
            .collect();
        largest_with_rest(items, CHART_GROUPS)
    };
    let by_model = |f: fn(&GroupSummary) -> f64| -> Vec<(String, f64)> {
        let mut items: Vec<(String, f64)> =
            agg.models.iter().map(|(k, g)| (k.clone(), f(g))).collect();
        items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        largest_with_rest(items, CHART_GROUPS)
    };
    let tokens = count_tick;
    let money = usd_tick;
    let parallelism = charts::parallelism(agg)?;
    let cumulative_cost = charts::cumulative_cost(&data.cumulative_cost)?;
    let cost_by_agent = svg::bars(&by_agent(|g| g.cost), money);
    let tokens_by_agent = svg::bars(&by_agent(|g| g.tokens as f64), tokens);
    let cost_by_phase = svg::bars(&by_phase(|g| g.cost), money);
    let tokens_by_phase = svg::bars(&by_phase(|g| g.tokens as f64), tokens);
    let cost_by_model = svg::bars(&by_model(|g| g.cost), money);
    let tokens_by_model = svg::bars(&by_model(|g| g.tokens as f64), tokens);
    let duration_rows: Vec<(String, &GroupSummary)> =
        agg.agents.iter().map(|(k, g)| (k.clone(), g)).collect();
    let (duration_rows, _) = largest_groups(duration_rows, CHART_GROUPS);
    let durations = svg::duration_boxes(&duration_rows);
    let timeline = charts::timeline(&data.earliest)?;
    let chains = &data.chains;

    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Invocation metrics report" }
                style { (PreEscaped(STYLE)) }
            }
            body { main {
                h1 { "Invocation metrics report" }
                p.sub {
                    (count(agg.total_invocations)) " invocations"
                    @if let Some(span) = totals_rows(agg).into_iter().find(|(name, _)| *name == "Span") {
                        ", " (span.1)
                    }
                }
                ul.coverage {
                    @for line in super::coverage_lines(&data.coverage) { li { (line) } }
                }
                section.cards {
                    @for (name, value) in totals_rows(agg) {
                        div.card { div.label { (name) } div.value { (value) } }
                    }
                    div.card { div.label { "Spent on failed invocations" } div.value { (super::failed_cost_line(data)) } }
                }
                h2 { "Parallelism over time" span.note { " (UTC)" } }
                div.panel { (PreEscaped(parallelism)) }
                h2 { "Cost so far" span.note { " (UTC, by when invocations ended)" } }
                div.panel { (PreEscaped(cumulative_cost)) }
                h2 { "Cost and tokens" }
                div.pair {
                    div.panel { h3 { "Cost by agent" } (PreEscaped(cost_by_agent)) }
                    div.panel { h3 { "Tokens by agent" } (PreEscaped(tokens_by_agent)) }
                    div.panel { h3 { "Cost by phase" } (PreEscaped(cost_by_phase)) }
                    div.panel { h3 { "Tokens by phase" } (PreEscaped(tokens_by_phase)) }
                    @if !agg.models.is_empty() {
                        div.panel { h3 { "Cost by model" } (PreEscaped(cost_by_model)) }
                        div.panel { h3 { "Tokens by model" } (PreEscaped(tokens_by_model)) }
                    }
                }
                h2 { "Duration distribution per agent" }
                @if agg.agents.len() > CHART_GROUPS {
                    p.note { "The " (CHART_GROUPS) " agents with the most invocations, of " (count(agg.agents.len() as u64)) "." }
                }
                p.legend.note {
                    "Per agent, log scale: a line from the fastest invocation (tick) to the 95th percentile, "
                    "a box from the 25th to the 75th percentile with a bar at the median, "
                    "dots on to the slowest (●). Hover a row for its numbers."
                }
                div.panel { (PreEscaped(durations)) }
                h2 { "Timeline" span.note { " (UTC)" } }
                p.legend {
                    span { i style="background:#2e9e5b" {} "succeeded" }
                    span { i style="background:#e08a1e" {} "succeeded on a retry" }
                    span { i style="background:#d63c3c" {} "failed" }
                }
                @if agg.total_invocations > TIMELINE_LIMIT as u64 {
                    p.note { "The earliest " (count(TIMELINE_LIMIT as u64)) " of " (count(agg.total_invocations)) " invocations." }
                }
                div.panel { (PreEscaped(timeline)) }
                h2 { "Slowest invocations" }
                div.wide { table {
                    thead { tr {
                        th { "Agent" } th { "Phase" } th.left { "Task" } th.left { "Model" }
                        th { "Duration" } th.left { "Started" } th.left { "Outcome" }
                    } }
                    tbody {
                        @for m in &data.slowest {
                            tr {
                                td { (m.agent) } td { (m.phase) }
                                td.left { (m.task_id.as_deref().unwrap_or("—")) }
                                td.left { (m.model.as_deref().unwrap_or("—")) }
                                td { (duration_ms(m.duration_ms as f64)) }
                                td.left { (utc_time(&m.timestamp)) }
                                td.left { (super::outcome(m)) }
                            }
                        }
                    }
                } }
                h2 { "Failures" }
                @if data.failures.is_empty() {
                    p.note { "No invocation failed." }
                } @else {
                    div.wide { table {
                        thead { tr {
                            th { "Class" } th { "Failures" } th { "Cost" } th.left { "Earliest (agent · task · started)" }
                        } }
                        tbody {
                            @for f in &data.failures {
                                tr {
                                    td { (f.class) } td { (count(f.count)) } td { (usd(f.cost)) }
                                    td.left {
                                        @for (i, m) in f.examples.iter().enumerate() {
                                            @if i > 0 { br; }
                                            (m.agent) " · " (m.task_id.as_deref().unwrap_or(&m.invocation_id)) " · " (utc_time(&m.timestamp))
                                        }
                                    }
                                }
                            }
                        }
                    } }
                }
                h2 { "Retry chains" }
                @if chains.is_empty() {
                    p.note { "No task was retried." }
                } @else {
                    p.note {
                        (counted(data.chain_count, "retried task")) ". For each agent (most retried first), "
                        "the chains that failed for good, then the longest."
                    }
                    @for (i, agent) in chains.iter().enumerate() {
                        details open[i < 3] {
                            summary {
                                (agent.agent) ": " (counted(agent.retried, "retried task")) ", "
                                (count(agent.failed)) " failed for good"
                                @if agent.retried > agent.chains.len() as u64 {
                                    " (" (count(agent.retried - agent.chains.len() as u64)) " more not shown)"
                                }
                            }
                            div.wide { table {
                                thead { tr { th.left { "Task" } th { "Phase" } th { "Attempts" } th.chain { "Outcomes" } } }
                                tbody {
                                    @for chain in &agent.chains {
                                        tr {
                                            td { (chain.task_id) } td { (chain.phase) }
                                            td { (chain.attempts.len()) } td.chain { (chain.outcomes()) }
                                        }
                                    }
                                }
                            } }
                        }
                    }
                    @if data.chain_agents > chains.len() as u64 {
                        p.note { "…and " (count(data.chain_agents - chains.len() as u64)) " more agents with retried tasks." }
                    }
                }
                @for breakdown in agg.breakdowns() {
                    (group_table(breakdown))
                }
            } }
        }
    };
    Ok(crate::format::neutralize_bidi(page.into_string()))
}

/// Most rows of a group table: the groups with the most invocations.
const TABLE_GROUPS: usize = 200;

fn group_table(breakdown: Breakdown<'_>) -> Markup {
    let key = breakdown.dimension;
    let (groups, left_out) = largest_groups(breakdown.groups, TABLE_GROUPS);
    let places = usd_places_for(groups.iter().map(|(_, g)| g.cost));
    html! {
        @if !groups.is_empty() {
            h2 { "By " (key) }
            details open[groups.len() <= 30] {
            summary { (count(groups.len() as u64)) " " (key) " groups" }
            div.wide { table {
                thead { tr { th { (key) } @for c in GROUP_COLUMNS { th { (c) } } } }
                tbody {
                    @for (name, g) in &groups {
                        tr { td { (name) } @for c in group_cells(g, places) { td { (c) } } }
                    }
                }
            } }
            @if left_out > 0 {
                p.note { "…and " (count(left_out as u64)) " more, with fewer invocations (every one in `invmetrics summary`)." }
            }
            }
        }
    }
}
