// The feature request's InvocationMetricsCollector written plainly in TypeScript, as its
// text describes it — in-memory array, JSON.stringify per line, a promise-chained
// fs.appendFile queue, line-by-line JSON.parse on load, a straightforward aggregate — for
// benchmarking the Rust-backed package against. Not part of the package.

import * as fs from 'node:fs'
import * as path from 'node:path'

// The seed's record type, as the package declares it.
import type { InvocationMetric } from '..'


export class SeedCollector {
  private metrics: InvocationMetric[] = []
  private queue: Promise<void> = Promise.resolve()
  private readonly file: string

  constructor(dir: string, private readonly logger: { warn(msg: string): void } = console) {
    fs.mkdirSync(dir, { recursive: true })
    this.file = path.join(dir, 'invocations.jsonl')
  }

  async record(metric: InvocationMetric): Promise<void> {
    this.metrics.push(metric)
    const line = JSON.stringify(metric) + '\n'
    // Fire-and-forget, queued so that lines never interleave.
    this.queue = this.queue.then(() => fs.promises.appendFile(this.file, line))
  }

  /** Waits for the write queue (the seed has no such method; the benchmark needs one). */
  drain(): Promise<void> {
    return this.queue
  }

  getAll(): InvocationMetric[] {
    return [...this.metrics]
  }

  getCount(): number {
    return this.metrics.length
  }

  async loadFromDisk(skipCount = 0): Promise<void> {
    const text = await fs.promises.readFile(this.file, 'utf8')
    let valid = 0
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue
      let metric: InvocationMetric
      try {
        metric = JSON.parse(line)
      } catch {
        this.logger.warn(`skipping malformed line`)
        continue
      }
      if (valid++ >= skipCount) this.metrics.push(metric)
    }
  }

  computeAggregate(bucketWidthMs = 1000, baseTier = 'normal') {
    const inc = (map: Record<string, number>, key: string | number, by = 1) => {
      map[key] = (map[key] ?? 0) + by
    }
    const invocationsByAgent: Record<string, number> = {}
    const invocationsByPhase: Record<number, number> = {}
    const retriesByAgent: Record<string, number> = {}
    const retriesByPhase: Record<number, number> = {}
    const tokensByAgent: Record<string, number> = {}
    const costByAgent: Record<string, number> = {}
    const durationByAgent: Record<string, number> = {}
    const infraFailed = new Set<string>()
    let totalRetries = 0
    let totalTokens = 0
    let totalCost = 0
    let totalCachedTokens = 0
    let totalDurationMs = 0
    let escalationCount = 0
    let successes = 0
    const events: Array<[number, number]> = []
    for (const m of this.metrics) {
      inc(invocationsByAgent, m.agent)
      inc(invocationsByPhase, m.phase)
      inc(tokensByAgent, m.agent, m.tokens)
      inc(costByAgent, m.agent, m.cost)
      inc(durationByAgent, m.agent, m.durationMs)
      retriesByAgent[m.agent] ??= 0
      retriesByPhase[m.phase] ??= 0
      if (m.attempt > 1) {
        totalRetries++
        inc(retriesByAgent, m.agent)
        inc(retriesByPhase, m.phase)
      }
      if (m.errorClass) infraFailed.add(`${m.agent}|${m.phase}|${m.taskId}|${m.attempt}`)
      totalTokens += m.tokens
      totalCost += m.cost
      totalCachedTokens += m.cachedTokens ?? 0
      totalDurationMs += m.durationMs
      if (m.tier !== undefined && m.tier !== baseTier) escalationCount++
      if (m.success) successes++
      const start = Date.parse(m.timestamp)
      events.push([start, 1], [start + m.durationMs, -1])
    }
    let infraRetries = 0
    for (const m of this.metrics) {
      if (m.attempt > 1 && m.taskId !== undefined && infraFailed.has(`${m.agent}|${m.phase}|${m.taskId}|${m.attempt - 1}`)) infraRetries++
    }
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    const buckets = new Map<number, number>()
    let running = 0
    let peak = 0
    for (const [t, delta] of events) {
      running += delta
      peak = Math.max(peak, running)
      const bucket = Math.floor(t / bucketWidthMs) * bucketWidthMs
      buckets.set(bucket, Math.max(buckets.get(bucket) ?? 0, running))
    }
    const avgDurationByAgent: Record<string, number> = {}
    for (const agent of Object.keys(durationByAgent)) avgDurationByAgent[agent] = durationByAgent[agent] / invocationsByAgent[agent]
    return {
      totalInvocations: this.metrics.length,
      invocationsByAgent,
      invocationsByPhase,
      totalRetries,
      retriesByAgent,
      retriesByPhase,
      infraRetries,
      totalTokens,
      totalCost,
      totalCachedTokens,
      tokensByAgent,
      costByAgent,
      totalDurationMs,
      avgDurationByAgent,
      peakParallelInvocations: peak,
      parallelismOverTime: [...buckets].sort((a, b) => a[0] - b[0]).map(([start, concurrent]) => ({ bucketStart: new Date(start).toISOString(), concurrent })),
      escalationCount,
      successRate: this.metrics.length === 0 ? 0 : successes / this.metrics.length,
    }
  }
}
