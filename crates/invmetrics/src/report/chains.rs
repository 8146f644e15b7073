//! The retry chains a report shows: for each agent (those with the most retried tasks
//! first), the chains that matter — the ones that failed for good, then the longest — and a
//! count of the rest, so that no agent vanishes from the report because its name sorts late.
//!
//! Two passes, like the aggregate: the first notes every retried task (a hash, its agent, its
//! most attempts, and whether that last attempt succeeded: about 32 bytes a retried task, not
//! the records) and picks the chains; the second collects those chains' attempts.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use invocation_metrics::{Attempt, InvocationMetric, RetryChain};

/// Chains shown per agent.
pub const CHAINS_PER_AGENT: usize = 5;
/// Agents whose chains are shown: those with the most retried tasks.
pub const CHAIN_AGENTS: usize = 30;

/// One agent's retry chains, as the report shows them.
#[derive(Debug, Clone)]
pub struct AgentChains {
    pub agent: String,
    /// Retried tasks of this agent.
    pub retried: u64,
    /// Of them, those whose last attempt failed.
    pub failed: u64,
    /// The chains shown: failed ones first, then the longest, tasks in natural order.
    pub chains: Vec<RetryChain>,
}

fn task_hash(agent: &str, phase: u32, task: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one((agent, phase, task))
}

/// What the first pass knows of one retried task.
#[derive(Debug, Clone, Copy)]
struct Task {
    agent: u32,
    /// The highest attempt number seen, and whether that attempt succeeded.
    attempts: u32,
    succeeded: bool,
}

/// The first pass: every retried task.
#[derive(Debug, Default)]
pub struct RetriedTasks {
    agents: Vec<String>,
    agent_ids: HashMap<String, u32>,
    tasks: HashMap<u64, Task>,
}

impl RetriedTasks {
    fn agent_id(&mut self, agent: &str) -> u32 {
        if let Some(id) = self.agent_ids.get(agent) {
            return *id;
        }
        let id = self.agents.len() as u32;
        self.agents.push(agent.to_owned());
        self.agent_ids.insert(agent.to_owned(), id);
        id
    }

    pub fn add(&mut self, m: &InvocationMetric) {
        let Some(task) = &m.task_id else { return };
        if m.attempt <= 1 {
            return;
        }
        let agent = self.agent_id(&m.agent);
        let seen = Task {
            agent,
            attempts: m.attempt,
            succeeded: m.success,
        };
        self.tasks
            .entry(task_hash(&m.agent, m.phase, task))
            .and_modify(|t| {
                if seen.attempts > t.attempts {
                    *t = seen;
                }
            })
            .or_insert(seen);
    }

    pub fn merge(&mut self, later: Self) {
        let ids: Vec<u32> = later.agents.iter().map(|a| self.agent_id(a)).collect();
        for (hash, mut task) in later.tasks {
            task.agent = ids[task.agent as usize];
            self.tasks
                .entry(hash)
                .and_modify(|t| {
                    if task.attempts > t.attempts {
                        *t = task;
                    }
                })
                .or_insert(task);
        }
    }

    /// Picks the chains to show, and what the second pass must collect for them.
    pub fn pick(&self) -> Picked {
        let mut by_agent: HashMap<u32, Vec<(u64, Task)>> = HashMap::new();
        for (hash, task) in &self.tasks {
            by_agent.entry(task.agent).or_default().push((*hash, *task));
        }
        let agent_count = by_agent.len() as u64;
        let mut agents: Vec<(u32, Vec<(u64, Task)>)> = by_agent.into_iter().collect();
        agents.sort_by(|a, b| {
            b.1.len()
                .cmp(&a.1.len())
                .then_with(|| natural_cmp(&self.agents[a.0 as usize], &self.agents[b.0 as usize]))
        });
        let mut picked = Picked::default();
        for (agent, mut tasks) in agents.into_iter().take(CHAIN_AGENTS) {
            // Failed for good first, then the longest; the hash only makes the order total.
            tasks.sort_by_key(|(hash, t)| (t.succeeded, Reverse(t.attempts), *hash));
            let name = self.agents[agent as usize].clone();
            picked.agents.push(AgentChains {
                agent: name,
                retried: tasks.len() as u64,
                failed: tasks.iter().filter(|(_, t)| !t.succeeded).count() as u64,
                chains: Vec::new(),
            });
            let slot = picked.agents.len() - 1;
            for (hash, _) in tasks.into_iter().take(CHAINS_PER_AGENT) {
                picked.wanted.insert(hash, slot);
            }
        }
        picked.total = self.tasks.len() as u64;
        picked.agent_count = agent_count;
        picked
    }
}

/// The chains picked, filled by the second pass.
#[derive(Debug, Default, Clone)]
pub struct Picked {
    /// Task hash → its agent's place in `agents`.
    wanted: HashMap<u64, usize>,
    agents: Vec<AgentChains>,
    /// The attempts found, by task.
    found: BTreeMap<(String, u32, String), Vec<Attempt>>,
    /// Retried tasks in all.
    pub total: u64,
    /// Agents with a retried task.
    pub agent_count: u64,
}

impl Picked {
    /// An empty copy to fill from a part of the input (chunks read in parallel).
    pub fn part(&self) -> Self {
        Self {
            wanted: self.wanted.clone(),
            agents: Vec::new(),
            found: BTreeMap::new(),
            total: 0,
            agent_count: 0,
        }
    }

    /// The second pass: collects the attempts of the picked chains.
    pub fn add(&mut self, m: &InvocationMetric) {
        let Some(task) = &m.task_id else { return };
        if !self
            .wanted
            .contains_key(&task_hash(&m.agent, m.phase, task))
        {
            return;
        }
        self.found
            .entry((m.agent.clone(), m.phase, task.clone()))
            .or_default()
            .push(Attempt {
                attempt: m.attempt,
                invocation_id: m.invocation_id.clone(),
                success: m.success,
                error_class: m.error_class.clone(),
                tier: m.tier.clone(),
            });
    }

    pub fn merge(&mut self, later: Self) {
        for (key, attempts) in later.found {
            self.found.entry(key).or_default().extend(attempts);
        }
    }

    /// Each agent's chains, in the order the report shows them, the retried tasks in all,
    /// and the agents that have one.
    pub fn finish(mut self) -> (Vec<AgentChains>, u64, u64) {
        for ((agent, phase, task_id), mut attempts) in std::mem::take(&mut self.found) {
            let Some(slot) = self.wanted.get(&task_hash(&agent, phase, &task_id)) else {
                continue;
            };
            attempts.sort_by_key(|a| a.attempt);
            self.agents[*slot].chains.push(RetryChain {
                agent,
                phase,
                task_id,
                attempts,
            });
        }
        for agent in &mut self.agents {
            agent.chains.sort_by(|a, b| {
                let failed = |c: &RetryChain| c.attempts.last().is_some_and(|a| !a.success);
                failed(b)
                    .cmp(&failed(a))
                    .then_with(|| b.attempts.len().cmp(&a.attempts.len()))
                    .then_with(|| a.phase.cmp(&b.phase))
                    .then_with(|| natural_cmp(&a.task_id, &b.task_id))
            });
        }
        (self.agents, self.total, self.agent_count)
    }
}

/// Orders text as people do: runs of digits by their value (`w2` before `w10`), the rest
/// as text. A dozen lines; no crate needed.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, db) = (digits(a), digits(b));
                let (na, nb) = (
                    a[..da].trim_start_matches('0'),
                    b[..db].trim_start_matches('0'),
                );
                let order = na
                    .len()
                    .cmp(&nb.len())
                    .then_with(|| na.cmp(nb))
                    .then(da.cmp(&db));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
            }
        }
    }
}

/// Every retried task's hash, for tests that count them plainly.
#[cfg(test)]
fn hashes(tasks: &RetriedTasks) -> std::collections::HashSet<u64> {
    tasks.tasks.keys().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use invocation_metrics::Timestamp;

    #[test]
    fn natural_order() {
        let mut tasks = vec!["p2-w10", "p2-w2", "p10-w1", "p2-w02", "a", "p2-w2b"];
        tasks.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            tasks,
            // Equal numbers: the one without leading zeros first.
            ["a", "p2-w2", "p2-w2b", "p2-w02", "p2-w10", "p10-w1"]
        );
    }

    fn attempt(agent: &str, task: &str, n: u32, success: bool) -> InvocationMetric {
        let mut m = InvocationMetric::new(
            format!("{agent}-{task}-{n}"),
            agent,
            1,
            Timestamp::UNIX_EPOCH,
        );
        m.task_id = Some(task.into());
        m.attempt = n;
        m.success = success;
        m
    }

    #[test]
    fn every_agent_shows_its_failed_then_longest_chains_whatever_the_split() {
        let mut records = Vec::new();
        // "zz-late" sorts last and has few retries: it must still be shown.
        for t in 0..40 {
            let task = format!("t{t}");
            let attempts = 2 + t % 3;
            for n in 1..=attempts {
                let last = n == attempts;
                records.push(attempt("alpha", &task, n, last && t % 10 != 0));
            }
        }
        records.push(attempt("zz-late", "only", 1, false));
        records.push(attempt("zz-late", "only", 2, true));
        let run = |parts: usize| {
            let size = records.len().div_ceil(parts);
            let mut first = RetriedTasks::default();
            for part in records.chunks(size) {
                let mut p = RetriedTasks::default();
                part.iter().for_each(|m| p.add(m));
                first.merge(p);
            }
            let mut picked = first.pick();
            for part in records.chunks(size) {
                let mut p = picked.part();
                part.iter().for_each(|m| p.add(m));
                picked.merge(p);
            }
            assert_eq!(hashes(&first).len(), 41);
            picked.finish()
        };
        let (agents, total, agent_count) = run(1);
        assert_eq!(agent_count, 2);
        assert_eq!(total, 41);
        assert_eq!(agents.len(), 2);
        let alpha = &agents[0];
        assert_eq!(
            (alpha.agent.as_str(), alpha.retried, alpha.failed),
            ("alpha", 40, 4)
        );
        assert_eq!(alpha.chains.len(), CHAINS_PER_AGENT);
        // The four that failed for good first (natural order among equals), then the longest.
        let shown: Vec<&str> = alpha.chains.iter().map(|c| c.task_id.as_str()).collect();
        assert_eq!(shown[..4], ["t20", "t10", "t0", "t30"]);
        assert_eq!(alpha.chains[4].attempts.len(), 4, "then the longest");
        assert!(
            alpha.chains[..4]
                .iter()
                .all(|c| !c.attempts.last().unwrap().success)
        );
        assert_eq!(agents[1].agent, "zz-late");
        assert_eq!(agents[1].chains[0].attempts.len(), 2);
        let (again, ..) = run(5);
        let ids = |a: &[AgentChains]| -> Vec<Vec<String>> {
            a.iter()
                .map(|a| a.chains.iter().map(|c| c.task_id.clone()).collect())
                .collect()
        };
        assert_eq!(ids(&again), ids(&agents));
    }
}
