// The feature request's flow in TypeScript: record each invocation, checkpoint the count
// between phases, and after a restart load only what came after the checkpoint.
// Type-checked in CI (`npm run typecheck`); run it after `npm run build` with
// `npx tsc -p examples && node examples/dist/resume.js /tmp/run`.

import {
  CheckpointStore,
  InvocationMetricsCollector,
  type InvocationMetric,
  type MetricsAggregate,
} from 'invocation-metrics'

const logger = { warn: (message: string, ...meta: unknown[]) => console.warn(message, ...meta) }

async function runPhase(collector: InvocationMetricsCollector, phase: number): Promise<void> {
  for (let task = 0; task < 3; task++) {
    const metric: InvocationMetric = {
      invocationId: `p${phase}-t${task}-a1`,
      agent: task === 0 ? 'planner' : 'coder',
      phase,
      taskId: `p${phase}-t${task}`,
      durationMs: 1200 + task * 300,
      tokens: 3000,
      inputTokens: 2500,
      outputTokens: 500,
      cost: 0.018,
      exitCode: 0,
      success: true,
      attempt: 1,
      outputParsed: true,
      model: 'model-standard',
      timestamp: new Date().toISOString(),
    }
    await collector.record(metric) // validated at once; never waits for the disk
  }
}

async function main(root: string): Promise<void> {
  const checkpoints = new CheckpointStore(`${root}/checkpoint`)
  const eventBus = { emit: (event: string, payload: unknown) => console.log(event, payload) }

  // First run: two phases, a checkpoint after each.
  const collector = new InvocationMetricsCollector(`${root}/metrics`, logger, { durability: 'periodic', eventBus })
  collector.on('metric-recorded', (metric) => console.log(`recorded ${metric.invocationId}`))
  for (const phase of [1, 2]) {
    await runPhase(collector, phase)
    // The metrics file is synced before the checkpoint that counts its records is saved.
    await collector.saveCheckpoint(checkpoints, { completedPhase: phase })
  }
  await collector.close()

  // After a restart: load what came after the checkpoint, go on.
  const resumed = new InvocationMetricsCollector(`${root}/metrics`, logger)
  const checkpoint = await checkpoints.load()
  const report = await resumed.loadFromDisk(checkpoint?.metricsCount ?? 0)
  console.log(`skipped ${report.skipped}, loaded ${report.loaded}`)
  await runPhase(resumed, 3)
  const summary: MetricsAggregate = resumed.computeAggregate()
  console.log(summary.totalInvocations, summary.costByAgent, summary.peakParallelInvocations)
  await resumed.close()
}

main(process.argv[2] ?? 'example-run').catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
