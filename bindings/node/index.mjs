// ES module entry: the same classes as the CommonJS one.
import bindings from './index.js'

export const { InvocationMetricsCollector, CheckpointStore } = bindings
export default bindings
