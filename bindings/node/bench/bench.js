'use strict'
// The npm package against a plain TypeScript implementation of the seed (seed-collector.ts),
// side by side in one run:
//
//   npm run build && npx tsc -p bench && node bench/bench.js [records for record()] [records for load]
//
// record(): one JavaScript thread awaiting each call, then until the lines are in the file.
// loadFromDisk() and computeAggregate() over the same file. Resident memory of a process
// holding the loaded records, measured in child processes (one per implementation).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const { InvocationMetricsCollector } = require('..')
const { SeedCollector } = require('./dist/seed-collector.js')
const { metric } = require('../test/helpers.js')

const recordCount = Number(process.argv[2] ?? 200_000)
const loadCount = Number(process.argv[3] ?? 1_000_000)
const quiet = { warn() {} }

function seconds(start) {
  return Number(process.hrtime.bigint() - start) / 1e9
}

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'invocation-metrics-bench-'))
}

// Built before the clock starts: the time of record(), not of making test objects (about
// 1 µs each, mostly the Date and its ISO string).
const metrics = Array.from({ length: recordCount }, (_, i) => metric(i))

async function timeRecords(make, finish) {
  const collector = make(tempDir())
  const start = process.hrtime.bigint()
  for (const m of metrics) await collector.record(m)
  const recorded = seconds(start)
  await finish(collector)
  return { recorded, written: seconds(start) }
}

async function main() {
  if (process.argv[2] === '--rss') return rss(process.argv[3], process.argv[4])

  // Alternating rounds (ROUNDS, default 3) so that the machine's drift hits both alike;
  // the median round of each is reported.
  const rounds = Number(process.env.ROUNDS ?? 3)
  const oursRounds = []
  const seedRounds = []
  for (let round = 0; round < rounds; round++) {
    oursRounds.push(await timeRecords((dir) => new InvocationMetricsCollector(dir, quiet), async (c) => { await c.flush(); await c.close() }))
    seedRounds.push(await timeRecords((dir) => new SeedCollector(dir, quiet), (c) => c.drain()))
  }
  const median = (list) => [...list].sort((a, b) => a.recorded - b.recorded)[Math.floor(list.length / 2)]
  const ours = median(oursRounds)
  const seed = median(seedRounds)
  const rate = (s) => Math.round(recordCount / s).toLocaleString('en')
  console.log(`record(), ${recordCount.toLocaleString('en')} awaited calls, median of ${rounds} alternating rounds:`)
  console.log(`  invocation-metrics  ${rate(ours.recorded)}/s (${rate(ours.written)}/s until written); rounds: ${oursRounds.map((r) => rate(r.recorded)).join(', ')}`)
  console.log(`  plain TypeScript    ${rate(seed.recorded)}/s (${rate(seed.written)}/s until written); rounds: ${seedRounds.map((r) => rate(r.recorded)).join(', ')}`)
  console.log(`  ratio               ${(seed.recorded / ours.recorded).toFixed(2)}× (${(seed.written / ours.written).toFixed(2)}× until written)`)

  const dir = tempDir()
  const writer = new InvocationMetricsCollector(dir, quiet, { durability: 'buffered' })
  for (let i = 0; i < loadCount; i++) writer.record(metric(i))
  await writer.close()
  const file = path.join(dir, 'invocations.jsonl')
  console.log(`\n${loadCount.toLocaleString('en')} records, ${(fs.statSync(file).size / 1e6).toFixed(0)} MB:`)

  const loadAndAggregate = async (make) => {
    const collector = make(dir)
    let start = process.hrtime.bigint()
    await collector.loadFromDisk(0)
    const load = seconds(start)
    start = process.hrtime.bigint()
    const aggregate = collector.computeAggregate()
    const first = seconds(start)
    if (collector.close) await collector.close()
    return { load, first, total: aggregate.totalInvocations }
  }
  const oursLoad = await loadAndAggregate((d) => new InvocationMetricsCollector(d, quiet))
  const seedLoad = await loadAndAggregate((d) => new SeedCollector(d, quiet))
  if (oursLoad.total !== seedLoad.total) throw new Error(`totals differ: ${oursLoad.total} vs ${seedLoad.total}`)
  const s = (x) => `${x.toFixed(3)} s`
  console.log(`  loadFromDisk()      ${s(oursLoad.load)} vs ${s(seedLoad.load)}: ${(seedLoad.load / oursLoad.load).toFixed(1)}×`)
  console.log(`  computeAggregate()  ${s(oursLoad.first)} vs ${s(seedLoad.first)}: ${(seedLoad.first / oursLoad.first).toFixed(1)}×`)

  const child = (kind) => {
    const out = spawnSync(process.execPath, ['--expose-gc', __filename, '--rss', kind, dir], { encoding: 'utf8' })
    if (out.status !== 0) throw new Error(out.stderr)
    return JSON.parse(out.stdout)
  }
  const baseline = child('none')
  const oursRss = child('ours')
  const seedRss = child('seed')
  const mb = (bytes) => `${(bytes / 1e6).toFixed(0)} MB`
  const perRecord = (r) => Math.round((r.rss - baseline.rss) / loadCount)
  console.log(`\nresident memory holding ${loadCount.toLocaleString('en')} loaded records (Node alone: ${mb(baseline.rss)}):`)
  console.log(`  invocation-metrics  ${mb(oursRss.rss)}: ${perRecord(oursRss)} B/record over Node's own`)
  console.log(`  plain TypeScript    ${mb(seedRss.rss)}: ${perRecord(seedRss)} B/record over Node's own`)
}

async function rss(kind, dir) {
  let keep = null
  if (kind === 'ours') {
    keep = new InvocationMetricsCollector(dir, quiet)
    await keep.loadFromDisk(0)
  } else if (kind === 'seed') {
    keep = new SeedCollector(dir, quiet)
    await keep.loadFromDisk(0)
  }
  global.gc()
  console.log(JSON.stringify({ rss: process.memoryUsage().rss, count: keep?.getCount() ?? 0 }))
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
