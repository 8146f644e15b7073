//! Retry chains: the attempts of one task (same agent, phase and taskId) in order.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::record::InvocationMetric;

/// One attempt within a [`RetryChain`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// The attempt number.
    pub attempt: u32,
    /// The invocation.
    pub invocation_id: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Its infrastructure error class, if any.
    pub error_class: Option<String>,
    /// Its tier, if any.
    pub tier: Option<String>,
}

/// The attempts of one task, ordered by attempt number.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryChain {
    /// Agent name.
    pub agent: String,
    /// Phase number.
    pub phase: u32,
    /// Task id.
    pub task_id: String,
    /// The attempts, first try first.
    pub attempts: Vec<Attempt>,
}

impl RetryChain {
    /// The outcomes in order, e.g. `failed (rate-limit) → failed → succeeded`.
    pub fn outcomes(&self) -> String {
        self.attempts
            .iter()
            .map(|a| match (&a.error_class, a.success) {
                (_, true) => "succeeded".to_owned(),
                (Some(class), false) => format!("failed ({class})"),
                (None, false) => "failed".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// Every task that was retried (has an attempt above 1), ordered by agent, phase and task.
/// Records without a taskId cannot be chained and are left out.
pub fn retry_chains(records: &[InvocationMetric]) -> Vec<RetryChain> {
    let mut chains: BTreeMap<(&str, u32, &str), Vec<Attempt>> = BTreeMap::new();
    for m in records {
        if let Some(task) = &m.task_id {
            chains
                .entry((&m.agent, m.phase, task))
                .or_default()
                .push(Attempt {
                    attempt: m.attempt,
                    invocation_id: m.invocation_id.clone(),
                    success: m.success,
                    error_class: m.error_class.clone(),
                    tier: m.tier.clone(),
                });
        }
    }
    chains
        .into_iter()
        .filter(|(_, attempts)| attempts.iter().any(|a| a.attempt > 1))
        .map(|((agent, phase, task), mut attempts)| {
            attempts.sort_by_key(|a| a.attempt);
            RetryChain {
                agent: agent.to_owned(),
                phase,
                task_id: task.to_owned(),
                attempts,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_group_by_agent_phase_task_and_sort_by_attempt() {
        let t = "2026-11-25T10:00:00Z".parse().unwrap();
        let mk = |id: &str, task: Option<&str>, attempt, success, class: Option<&str>| {
            let mut m = InvocationMetric::new(id, "coder", 1, t);
            m.task_id = task.map(Into::into);
            m.attempt = attempt;
            m.success = success;
            m.error_class = class.map(Into::into);
            m
        };
        let records = [
            mk("c", Some("t1"), 3, true, None),
            mk("a", Some("t1"), 1, false, Some("rate-limit")),
            mk("b", Some("t1"), 2, false, None),
            mk("d", Some("t2"), 1, true, None),
            mk("e", None, 2, true, None),
        ];
        let chains = retry_chains(&records);
        assert_eq!(chains.len(), 1);
        assert_eq!(chains[0].task_id, "t1");
        assert_eq!(
            chains[0].outcomes(),
            "failed (rate-limit) → failed → succeeded"
        );
    }
}
