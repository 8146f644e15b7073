//! Retry chains: the attempts of one task (same agent, phase and taskId) in order.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::hashing::{FastHash, hash64};
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
    let mut scan = RetryChainScan::new(usize::MAX);
    records.iter().for_each(|m| scan.first_pass(m));
    if scan.needs_second_pass() {
        records.iter().for_each(|m| scan.second_pass(m));
    }
    scan.finish().0
}

/// Finds the first `limit` retry chains (in [`retry_chains`]' order) and counts them all,
/// in two passes over the same records, holding one hash per retried task and the attempts
/// of the chains it keeps — not the records. For inputs too big to hold.
///
/// ```
/// use invocation_metrics::{InvocationMetric, RetryChainScan, Timestamp};
///
/// let attempt = |id: &str, n: u32| {
///     let mut m = InvocationMetric::new(id, "coder", 1, Timestamp::UNIX_EPOCH);
///     m.task_id = Some("t1".into());
///     m.attempt = n;
///     m
/// };
/// let records = [attempt("a", 1), attempt("b", 2)];
/// let mut scan = RetryChainScan::new(10);
/// records.iter().for_each(|m| scan.first_pass(m));
/// if scan.needs_second_pass() {
///     records.iter().for_each(|m| scan.second_pass(m));
/// }
/// let (chains, total) = scan.finish();
/// assert_eq!((chains[0].attempts.len(), total), (2, 1));
/// ```
#[derive(Debug, Clone)]
pub struct RetryChainScan {
    limit: usize,
    /// Every retried task, by hash: the count.
    retried: HashSet<u64, FastHash>,
    /// The `limit` smallest retried tasks: the chains kept.
    kept: BTreeMap<(String, u32, String), Vec<Attempt>>,
    /// Their hashes, made for the second pass: most records belong to no kept chain, and
    /// this tells so without building a key.
    kept_hashes: Option<HashSet<u64, FastHash>>,
}

impl RetryChainScan {
    /// Keeps the first `limit` chains.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            retried: HashSet::default(),
            kept: BTreeMap::new(),
            kept_hashes: None,
        }
    }

    /// The first pass: notes each retried task.
    pub fn first_pass(&mut self, m: &InvocationMetric) {
        let Some(task) = &m.task_id else { return };
        if m.attempt <= 1 || !self.retried.insert(hash64((&m.agent, m.phase, task))) {
            return;
        }
        let past_the_last = self.kept.len() >= self.limit
            && self.kept.last_key_value().is_some_and(|(last, _)| {
                (last.0.as_str(), last.1, last.2.as_str()) < (&m.agent, m.phase, task)
            });
        if past_the_last || self.limit == 0 {
            return;
        }
        self.kept
            .insert((m.agent.clone(), m.phase, task.clone()), Vec::new());
        if self.kept.len() > self.limit {
            self.kept.pop_last();
        }
    }

    /// For a second pass split into parts (chunks read in parallel): a scan that keeps the
    /// same chains, with no attempts yet and no count; [`merge`](Self::merge) the parts back
    /// into this one, in order.
    pub fn second_pass_part(&self) -> Self {
        Self {
            limit: self.limit,
            retried: HashSet::default(),
            kept: self
                .kept
                .keys()
                .map(|key| (key.clone(), Vec::new()))
                .collect(),
            kept_hashes: None,
        }
    }

    /// Adds what `later` found in the records that follow this one's: for a first pass split
    /// into parts, its retried tasks; for a second pass, its attempts.
    pub fn merge(&mut self, later: Self) {
        self.retried.extend(later.retried);
        for (key, attempts) in later.kept {
            self.kept.entry(key).or_default().extend(attempts);
        }
        while self.kept.len() > self.limit {
            self.kept.pop_last();
        }
        self.kept_hashes = None;
    }

    /// Whether [`second_pass`](Self::second_pass) has attempts to collect.
    pub fn needs_second_pass(&self) -> bool {
        !self.kept.is_empty()
    }

    /// The second pass, over the same records in the same order: collects the attempts
    /// of the chains kept.
    pub fn second_pass(&mut self, m: &InvocationMetric) {
        let Some(task) = &m.task_id else { return };
        let kept = &self.kept;
        let kept_hashes = self.kept_hashes.get_or_insert_with(|| {
            kept.keys()
                .map(|(agent, phase, task)| hash64((agent, *phase, task)))
                .collect()
        });
        if !kept_hashes.contains(&hash64((&m.agent, m.phase, task))) {
            return;
        }
        let key = (m.agent.clone(), m.phase, task.clone());
        if let Some(attempts) = self.kept.get_mut(&key) {
            attempts.push(Attempt {
                attempt: m.attempt,
                invocation_id: m.invocation_id.clone(),
                success: m.success,
                error_class: m.error_class.clone(),
                tier: m.tier.clone(),
            });
        }
    }

    /// The chains kept, in order, and how many retried tasks there are in all.
    pub fn finish(self) -> (Vec<RetryChain>, u64) {
        let chains = self
            .kept
            .into_iter()
            .map(|((agent, phase, task_id), mut attempts)| {
                attempts.sort_by_key(|a| a.attempt);
                RetryChain {
                    agent,
                    phase,
                    task_id,
                    attempts,
                }
            })
            .collect();
        (chains, self.retried.len() as u64)
    }
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

    #[test]
    fn a_limited_scan_keeps_the_first_chains_and_counts_them_all() {
        let mut rng = fastrand::Rng::with_seed(7);
        let t = "2026-11-25T10:00:00Z".parse().unwrap();
        let records: Vec<InvocationMetric> = (0..3000)
            .map(|i| {
                let agent = ["a", "b", "c"][rng.usize(0..3)];
                let mut m = InvocationMetric::new(format!("i{i}"), agent, rng.u32(1..4), t);
                m.task_id = (rng.u8(0..10) > 0).then(|| format!("t{}", rng.u32(0..300)));
                m.attempt = rng.u32(1..4);
                m.success = rng.bool();
                m
            })
            .collect();
        // The plain way: group every record by task, keep the groups with a retry.
        let mut groups: BTreeMap<(&str, u32, &str), Vec<&InvocationMetric>> = BTreeMap::new();
        for m in &records {
            if let Some(task) = &m.task_id {
                groups.entry((&m.agent, m.phase, task)).or_default().push(m);
            }
        }
        let plain: Vec<(String, u32, String, Vec<u32>)> = groups
            .into_iter()
            .filter(|(_, ms)| ms.iter().any(|m| m.attempt > 1))
            .map(|((a, p, t), ms)| {
                let mut attempts: Vec<u32> = ms.iter().map(|m| m.attempt).collect();
                attempts.sort();
                (a.to_owned(), p, t.to_owned(), attempts)
            })
            .collect();
        let all = retry_chains(&records);
        let found: Vec<(String, u32, String, Vec<u32>)> = all
            .iter()
            .map(|c| {
                let attempts = c.attempts.iter().map(|a| a.attempt).collect();
                (c.agent.clone(), c.phase, c.task_id.clone(), attempts)
            })
            .collect();
        assert_eq!(found, plain);
        assert!(all.len() > 20, "{} chains", all.len());
        for limit in [0, 1, 7, all.len(), all.len() + 5] {
            let mut scan = RetryChainScan::new(limit);
            records.iter().for_each(|m| scan.first_pass(m));
            assert_eq!(scan.needs_second_pass(), limit > 0);
            records.iter().for_each(|m| scan.second_pass(m));
            let (chains, total) = scan.finish();
            assert_eq!(total, all.len() as u64);
            assert_eq!(chains, all[..limit.min(all.len())], "limit {limit}");

            // The same in parts, as chunks read in parallel are: each pass split in three,
            // merged in order.
            let parts: Vec<&[InvocationMetric]> = records.chunks(1000).collect();
            let mut whole = RetryChainScan::new(limit);
            for part in &parts {
                let mut scan = RetryChainScan::new(limit);
                part.iter().for_each(|m| scan.first_pass(m));
                whole.merge(scan);
            }
            let template = whole.second_pass_part();
            for part in &parts {
                let mut scan = template.clone();
                part.iter().for_each(|m| scan.second_pass(m));
                whole.merge(scan);
            }
            let (chains, total) = whole.finish();
            assert_eq!(total, all.len() as u64);
            assert_eq!(chains, all[..limit.min(all.len())], "parts, limit {limit}");
        }
    }
}
