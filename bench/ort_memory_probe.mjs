// Measures the memory ONNX Runtime (onnxruntime-node) needs to run a model, the counterpart of
// bench/memory_probe.cpp; bench/compare_memory_with_onnxruntime.py runs both and compares.
//
// Usage (from the repository root; --expose-gc so each run's outputs can be freed before the next):
//   node --expose-gc bench/ort_memory_probe.mjs --model M.onnx --inputs a.npy,b.npy
//        [--threads 1] [--runs 3] [--arena 1] [--pattern 1]
// --arena and --pattern set the session options enableCpuMemArena and enableMemPattern (ORT's
// defaults are 1 and 1). Creates the session (graph optimizations "all", sequential execution),
// then runs the model --runs times and prints one line of JSON with rss_before_runs and
// rss_peak_during_runs (VmRSS before the runs, VmHWM reset before them). Under
// LD_PRELOAD=heap_probe_preload.so it also places the heap marks: one reset before the runs and
// one report after each run, so each report lists the large allocations of that run alone.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const requireFromPeers = createRequire(path.join(repositoryRoot, 'third_party/npm/package.json'));

// Sizes that heap_probe_preload.cpp reads as "reset the baseline" and "report".
const HEAP_MARK_RESET_BYTES = 1000003;
const HEAP_MARK_REPORT_BYTES = 1000033;

function fail(message) {
  console.error(`ort_memory_probe: ${message}`);
  process.exit(2);
}

function statusBytes(field) {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!match) fail(`no ${field} in /proc/self/status`);
  return Number(match[1]) * 1024;
}

// Little-endian C-order .npy of the types the zoo uses (float32, int64).
function readNpy(file) {
  const bytes = fs.readFileSync(file);
  if (bytes.toString('latin1', 0, 6) !== '\x93NUMPY') fail(`${file}: not a .npy file`);
  const headerStart = bytes[6] === 1 ? 10 : 12;
  const headerLength = bytes[6] === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const header = bytes.toString('latin1', headerStart, headerStart + headerLength);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').filter((s) => s.trim()).map(Number);
  const types = { '<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array] };
  if (!types[descr] || /True/.test(header)) fail(`${file}: unsupported .npy header ${header.trim()}`);
  const [type, ArrayType] = types[descr];
  const start = bytes.byteOffset + headerStart + headerLength;
  return { type, shape, data: new ArrayType(bytes.buffer.slice(start, bytes.byteOffset + bytes.length)) };
}

// Two collections with a turn of the event loop between: the native memory behind a tensor is
// released by a finalizer that runs after the collection that found the tensor unreachable.
async function settleGarbage() {
  for (let i = 0; i < 2; ++i) {
    global.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const options = { threads: 1, runs: 3, arena: 1, pattern: 1 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i].replace(/^--/, '');
  if (!argv[i].startsWith('--') || !['model', 'inputs', 'threads', 'runs', 'arena', 'pattern'].includes(name))
    fail(`unknown argument ${argv[i]}`);
  if (argv[i + 1] === undefined) fail(`${argv[i]} needs a value`);
  options[name] = ['model', 'inputs'].includes(name) ? argv[i + 1] : Number(argv[i + 1]);
}
if (!options.model || !options.inputs) fail('--model and --inputs are required');
if (typeof global.gc !== 'function') fail('run node with --expose-gc');

const ort = requireFromPeers('onnxruntime-node');
const session = await ort.InferenceSession.create(options.model, {
  intraOpNumThreads: options.threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  enableCpuMemArena: options.arena === 1,
  enableMemPattern: options.pattern === 1,
});
const inputFiles = options.inputs.split(',').filter((s) => s.length);
if (inputFiles.length !== session.inputNames.length)
  fail(`model has ${session.inputNames.length} inputs, got ${inputFiles.length} files`);
const feeds = {};
session.inputNames.forEach((name, k) => {
  const input = readNpy(inputFiles[k]);
  feeds[name] = new ort.Tensor(input.type, input.data, input.shape);
});
// Let the collector free what loading left behind (the .npy file buffers) before the baseline.
await settleGarbage();

const marks = [Buffer.allocUnsafeSlow(HEAP_MARK_RESET_BYTES)];
const rssBefore = statusBytes('VmRSS');
fs.writeFileSync('/proc/self/clear_refs', '5');  // VmHWM := VmRSS (Linux 4.0+)
for (let r = 0; r < options.runs; ++r) {
  let outputs = await session.run(feeds);
  marks.push(Buffer.allocUnsafeSlow(HEAP_MARK_REPORT_BYTES));
  outputs = null;
  await settleGarbage();  // outputs of this run are freed before the next, as in the C++ probe
}
const rssPeak = statusBytes('VmHWM');
console.log(JSON.stringify({
  engine: 'onnxruntime', version: ort.env.versions?.common ?? '', threads: options.threads, runs: options.runs,
  arena: options.arena, pattern: options.pattern, rss_before_runs: rssBefore, rss_peak_during_runs: rssPeak,
}));
