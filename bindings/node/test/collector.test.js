'use strict'
// The seed's InvocationMetricsCollector API, method by method, on the real native core.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { InvocationMetricsCollector } = require('..')
const { tempDir, metric, recordingLogger } = require('./helpers.js')

test('records, counts, returns every record in order with optional fields absent', async () => {
  const collector = new InvocationMetricsCollector(tempDir())
  for (let i = 0; i < 20; i++) {
    await collector.record(metric(i))
  }
  const bare = metric(20)
  for (const field of ['taskId', 'inputTokens', 'outputTokens', 'model']) delete bare[field]
  await collector.record(bare)
  assert.equal(collector.getCount(), 21)
  const all = collector.getAll()
  assert.deepEqual(all.map((m) => m.invocationId), Array.from({ length: 21 }, (_, i) => `inv-${i}`))
  assert.deepEqual(all[3], metric(3))
  assert.deepEqual(Object.keys(all[20]).sort(), Object.keys(bare).sort())
  assert.ok(!('cachedTokens' in all[0]) && !('errorClass' in all[0]) && !('tier' in all[0]))
  await collector.close()
})

test('a Date timestamp is stored as its ISO string', async () => {
  const collector = new InvocationMetricsCollector(tempDir())
  const when = new Date(Date.UTC(2026, 10, 27, 10, 30, 0, 125))
  await collector.record(metric(1, { timestamp: when }))
  assert.equal(collector.getAll()[0].timestamp, '2026-11-27T10:30:00.125Z')
  await collector.close()
})

test('flush writes every record to invocations.jsonl, one JSON object per line', async () => {
  const dir = tempDir()
  const collector = new InvocationMetricsCollector(dir, undefined, { durability: 'always' })
  for (let i = 0; i < 50; i++) await collector.record(metric(i))
  await collector.flush()
  const lines = fs.readFileSync(path.join(dir, 'invocations.jsonl'), 'utf8').trimEnd().split('\n')
  assert.equal(lines.length, 50)
  assert.deepEqual(JSON.parse(lines[49]), metric(49))
  await collector.sync()
  await collector.close()
})

test('computeAggregate has the seed fields with their exact names and values', async () => {
  const collector = new InvocationMetricsCollector(tempDir(), undefined, { bucketWidthMs: 1000, baseTier: 'normal' })
  await collector.record(metric(0, { agent: 'coder', durationMs: 1000, tokens: 10, cost: 0.5, tier: 'normal' }))
  await collector.record(metric(1, { agent: 'coder', durationMs: 3000, tokens: 20, cost: 0.25, attempt: 2, tier: 'premium', taskId: 'task-0', phase: 1 }))
  await collector.record(metric(2, { agent: 'planner', durationMs: 500, tokens: 5, cost: 0, cachedTokens: 4 }))
  const agg = collector.computeAggregate()
  const seedFields = [
    'totalInvocations', 'invocationsByAgent', 'invocationsByPhase', 'totalRetries', 'retriesByAgent',
    'retriesByPhase', 'infraRetries', 'totalTokens', 'totalCost', 'totalCachedTokens', 'tokensByAgent',
    'costByAgent', 'totalDurationMs', 'avgDurationByAgent', 'peakParallelInvocations',
    'parallelismOverTime', 'escalationCount', 'successRate',
  ]
  for (const field of seedFields) assert.ok(field in agg, field)
  assert.equal(agg.totalInvocations, 3)
  assert.deepEqual(agg.invocationsByAgent, { coder: 2, planner: 1 })
  assert.equal(agg.totalRetries, 1)
  assert.deepEqual(agg.retriesByAgent, { coder: 1, planner: 0 })
  assert.equal(agg.totalTokens, 35)
  assert.equal(agg.totalCost, 0.75)
  assert.equal(agg.totalCachedTokens, 4)
  assert.deepEqual(agg.avgDurationByAgent, { coder: 2000, planner: 500 })
  assert.equal(agg.escalationCount, 1)
  assert.equal(agg.totalDurationMs, 4500)
  assert.ok(Array.isArray(agg.parallelismOverTime) && agg.parallelismOverTime[0].bucketStart.endsWith('Z'))
  await collector.close()
})

test('invalid input of every field rejects with an Error naming the field, and records nothing', async () => {
  const collector = new InvocationMetricsCollector(tempDir())
  const cases = [
    ['invocationId', { invocationId: '' }],
    ['invocationId', { invocationId: 7 }],
    ['agent', { agent: undefined }],
    ['agent', { agent: '' }],
    ['phase', { phase: -1 }],
    ['phase', { phase: 1.5 }],
    ['durationMs', { durationMs: '5' }],
    ['durationMs', { durationMs: NaN }],
    ['tokens', { tokens: -3 }],
    ['inputTokens', { inputTokens: 'many' }],
    ['cachedTokens', { cachedTokens: -1 }],
    ['cost', { cost: Infinity }],
    ['cost', { cost: -0.5 }],
    ['exitCode', { exitCode: 'zero' }],
    ['success', { success: 'yes' }],
    ['attempt', { attempt: 0 }],
    ['outputParsed', { outputParsed: null }],
    ['model', { model: 42 }],
    ['timestamp', { timestamp: 'yesterday' }],
    ['timestamp', { timestamp: '2026-11-27T10:00:00' }],
    ['errorClass', { errorClass: false }],
  ]
  for (const [field, change] of cases) {
    await assert.rejects(collector.record(metric(1, change)), (error) => {
      assert.ok(error instanceof Error)
      assert.match(error.message, new RegExp(`\`${field}\``), `${JSON.stringify(change)}: ${error.message}`)
      return true
    })
  }
  // A snake_case key is not the seed's field, and the error says what to write instead.
  const snake = metric(1)
  snake.duration_ms = snake.durationMs
  delete snake.durationMs
  await assert.rejects(
    collector.record(snake),
    /`durationMs`: is missing \(`duration_ms` is given: field names are camelCase, `durationMs`\)/,
  )
  await assert.rejects(collector.record(null), TypeError)
  await assert.rejects(collector.record('{"invocationId":"x"}'), TypeError)
  assert.equal(collector.getCount(), 0)
  // A duplicate id is refused too: readers would keep only the first.
  await collector.record(metric(1))
  await assert.rejects(collector.record(metric(1)), /`invocationId`: "inv-1" was already recorded/)
  assert.equal(collector.getCount(), 1)
  await collector.close()
})

test('bad options throw at construction', () => {
  assert.throws(() => new InvocationMetricsCollector(tempDir(), undefined, { durability: 'sometimes' }), /durability/)
  assert.throws(() => new InvocationMetricsCollector(tempDir(), undefined, { bucketWidthMs: 0 }), /bucketWidthMs/)
  assert.throws(() => new InvocationMetricsCollector(''), TypeError)
  assert.throws(() => new InvocationMetricsCollector(tempDir(), undefined, { bucketWidthMs: '1000' }), /options\.bucketWidthMs must be a number/)
  assert.throws(() => new InvocationMetricsCollector(tempDir(), undefined, { baseTier: 1 }), /options\.baseTier must be a string/)
  assert.throws(() => new InvocationMetricsCollector(tempDir(), { info() {} }), /warn/)
})

test('a closed collector refuses every call with a clear message', async () => {
  const collector = new InvocationMetricsCollector(tempDir())
  await collector.record(metric(1))
  await collector.close()
  const closed = /the collector is closed/
  await assert.rejects(collector.record(metric(2)), closed)
  await assert.rejects(() => collector.flush(), closed)
  await assert.rejects(() => collector.loadFromDisk(), closed)
  await assert.rejects(() => collector.close(), closed)
  assert.throws(() => collector.getAll(), closed)
  assert.throws(() => collector.getCount(), closed)
  assert.throws(() => collector.computeAggregate(), closed)
})

test('metric-recorded: one call per record, in record order; listener errors never reach record()', async () => {
  const emitted = []
  const eventBus = { emit: (event, payload) => emitted.push([event, payload.metric.invocationId]) }
  const logger = recordingLogger()
  const collector = new InvocationMetricsCollector(tempDir(), logger, { eventBus })
  const seen = []
  const listener = (m) => seen.push(m.invocationId)
  collector.on('metric-recorded', listener)
  collector.on('metric-recorded', () => {
    throw new Error('listener bug')
  })
  const records = Array.from({ length: 100 }, (_, i) => collector.record(metric(i)))
  await Promise.all(records)
  assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => `inv-${i}`))
  assert.equal(emitted.length, 100)
  assert.deepEqual(emitted[7], ['metric-recorded', 'inv-7'])
  assert.equal(logger.warnings.length, 100)
  assert.match(logger.warnings[0].message, /listener threw: listener bug/)
  collector.off('metric-recorded', listener)
  await collector.record(metric(100))
  assert.equal(seen.length, 100)
  // A rejected record emits nothing.
  await assert.rejects(collector.record(metric(101, { attempt: 0 })))
  assert.equal(emitted.length, 101)
  assert.throws(() => collector.on('recorded', listener), /the only event is 'metric-recorded'/)
  await collector.close()
})

test('loadFromDisk reports each damaged line through logger.warn with its line number', async () => {
  const dir = tempDir()
  const good = (i) => JSON.stringify(metric(i))
  fs.writeFileSync(path.join(dir, 'invocations.jsonl'), [good(1), '{"invocationId":"x"', good(2), 'not json', good(3), ''].join('\n'))
  const logger = recordingLogger()
  const collector = new InvocationMetricsCollector(dir, logger)
  const report = await collector.loadFromDisk()
  assert.equal(report.loaded, 3)
  assert.equal(report.malformed, 2)
  assert.deepEqual(logger.warnings.map((w) => w.meta[0].line), [2, 4])
  assert.match(logger.warnings[0].message, /invocations\.jsonl:2: skipped: /)
  assert.deepEqual(collector.getAll().map((m) => m.invocationId), ['inv-1', 'inv-2', 'inv-3'])
  await collector.close()
})

test('the default logger is the console', async () => {
  const collector = new InvocationMetricsCollector(tempDir())
  await collector.close()
})
