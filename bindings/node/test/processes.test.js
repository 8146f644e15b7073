'use strict'
// The collector across real Node processes: the directory lock, the seed's resume flow,
// kill -9 after acknowledged flushes, ES module import, and a JavaScript thread that stays
// free while a big file loads.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')

const { InvocationMetricsCollector, CheckpointStore } = require('..')
const { tempDir, metric } = require('./helpers.js')

const PACKAGE = path.join(__dirname, '..')

/** Runs `source` in a new node process with the package at hand; returns its output. */
function runNode(source, args = []) {
  const result = spawnSync(process.execPath, ['-e', source, ...args], { encoding: 'utf8', cwd: PACKAGE })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

test('a second process cannot open a directory another holds', async () => {
  const dir = tempDir()
  const holder = new InvocationMetricsCollector(dir)
  const other = runNode(`
    const { InvocationMetricsCollector } = require('.')
    try { new InvocationMetricsCollector(process.argv[1]); console.log('opened') }
    catch (e) { console.log('refused: ' + e.code + ' ' + e.message) }
  `, [dir])
  assert.match(other.stdout, /refused: ELOCKED .*locked by another collector/, other.stderr)
  await holder.close()
  const after = runNode(`
    const { InvocationMetricsCollector } = require('.')
    new InvocationMetricsCollector(process.argv[1]).close().then(() => console.log('opened'))
  `, [dir])
  assert.equal(after.stdout.trim(), 'opened', after.stderr)
})

test("the seed's resume flow: record, checkpoint metricsCount, new process, loadFromDisk(count)", async () => {
  const dir = tempDir()
  const metrics = path.join(dir, 'metrics')
  const checkpoints = path.join(dir, 'checkpoints')
  const first = runNode(`
    const { InvocationMetricsCollector, CheckpointStore } = require('.')
    const { metric } = require('./test/helpers.js')
    ;(async () => {
      const collector = new InvocationMetricsCollector(process.argv[1])
      const store = new CheckpointStore(process.argv[2])
      for (let i = 0; i < 30; i++) await collector.record(metric(i))
      const saved = await collector.saveCheckpoint(store, { completedPhase: 2 })
      for (let i = 30; i < 42; i++) await collector.record(metric(i))
      await collector.close()
      console.log(JSON.stringify(saved))
    })()
  `, [metrics, checkpoints])
  assert.equal(first.code, 0, first.stderr)
  assert.deepEqual(JSON.parse(first.stdout), { metricsCount: 30, completedPhase: 2 })

  const store = new CheckpointStore(checkpoints)
  const checkpoint = await store.load()
  assert.deepEqual(checkpoint, { metricsCount: 30, completedPhase: 2 })
  const collector = new InvocationMetricsCollector(metrics)
  const report = await collector.loadFromDisk(checkpoint.metricsCount)
  assert.equal(report.skipped, 30)
  assert.equal(report.missing, 0)
  assert.deepEqual(collector.getAll().map((m) => m.invocationId), Array.from({ length: 12 }, (_, i) => `inv-${30 + i}`))
  await collector.close()
})

test('kill -9 of a Node process loses no acknowledged record', async () => {
  for (const durability of ['always', 'periodic', 'buffered']) {
    const dir = tempDir()
    const child = spawn(process.execPath, ['-e', `
      const { InvocationMetricsCollector } = require('.')
      const { metric } = require('./test/helpers.js')
      ;(async () => {
        const collector = new InvocationMetricsCollector(process.argv[1], undefined, { durability: process.argv[2] })
        for (let i = 0; ; i++) {
          await collector.record(metric(i))
          if (i % 10 === 9) { await collector.flush(); console.log('ACK ' + i) }
        }
      })()
    `, dir, durability], { cwd: PACKAGE, stdio: ['ignore', 'pipe', 'inherit'] })
    // Only whole lines count: a line the kill cut short acknowledged nothing (readline
    // would hand it over as a last line too).
    let acked = -1
    let unfinished = ''
    const allRead = new Promise((resolve) => child.stdout.on('end', resolve))
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal)))
    await new Promise((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (text) => {
        const lines = (unfinished + text).split('\n')
        unfinished = lines.pop()
        for (const line of lines) acked = Number(line.slice(4))
        if (acked >= 2000) resolve()
      })
      allRead.then(resolve) // a child that died early fails below instead of hanging here
    })
    child.kill('SIGKILL')
    // Acknowledgements printed before the kill still count.
    await allRead
    assert.equal(await exited, 'SIGKILL', `${durability}: the child ended before the kill`)
    assert.ok(acked >= 2000, `${durability}: acknowledged only ${acked + 1}`)

    const collector = new InvocationMetricsCollector(dir)
    const report = await collector.loadFromDisk()
    assert.equal(report.malformed, 0, durability)
    const ids = collector.getAll().map((m) => m.invocationId)
    assert.ok(ids.length > acked, `${durability}: acknowledged ${acked + 1}, found ${ids.length}`)
    assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => `inv-${i}`), durability)
    await collector.close()
  }
})

test('import from an ES module gives the same classes', () => {
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import { InvocationMetricsCollector, CheckpointStore } from 'invocation-metrics'
    import cjs from 'invocation-metrics'
    console.log(typeof InvocationMetricsCollector, typeof CheckpointStore, cjs.InvocationMetricsCollector === InvocationMetricsCollector)
  `], { encoding: 'utf8', cwd: PACKAGE })
  assert.equal(result.stdout.trim(), 'function function true', result.stderr)
})

test('the JavaScript thread stays free while a big file loads', async () => {
  const dir = tempDir()
  const lines = Array.from({ length: 200_000 }, (_, i) => JSON.stringify(metric(i)))
  fs.writeFileSync(path.join(dir, 'invocations.jsonl'), lines.join('\n') + '\n')
  const collector = new InvocationMetricsCollector(dir)
  let ranDuringLoad = false
  const loading = collector.loadFromDisk().then((report) => ({ report, ranDuringLoad }))
  setImmediate(() => {
    ranDuringLoad = true
  })
  const { report, ranDuringLoad: ran } = await loading
  assert.equal(report.loaded, 200_000)
  assert.ok(ran, 'a callback ran while the file was loading')
  assert.equal(collector.computeAggregate().totalInvocations, 200_000)
  await collector.close()
})
