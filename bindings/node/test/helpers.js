'use strict'
// Shared by the tests: temporary directories, valid metrics, a logger that remembers.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'invocation-metrics-node-'))
}

/** A valid metric whose fields vary with `i`; `overrides` replace fields. */
function metric(i, overrides = {}) {
  return {
    invocationId: `inv-${i}`,
    agent: ['planner', 'coder', 'reviewer'][i % 3],
    phase: (i % 4) + 1,
    taskId: `task-${Math.floor(i / 3)}`,
    durationMs: 100 + ((i * 37) % 2000),
    tokens: 1000 + i,
    inputTokens: 800 + i,
    outputTokens: 200,
    cost: 0.001 * (i % 10),
    exitCode: i % 5 === 0 ? 1 : 0,
    success: i % 5 !== 0,
    attempt: 1,
    outputParsed: true,
    model: 'model-a',
    timestamp: new Date(Date.UTC(2026, 10, 24, 9, 0, 0) + i * 250).toISOString(),
    ...overrides,
  }
}

/** A logger that keeps what it is told. */
function recordingLogger() {
  const warnings = []
  return { warnings, warn: (message, ...meta) => warnings.push({ message, meta }) }
}

module.exports = { tempDir, metric, recordingLogger }
