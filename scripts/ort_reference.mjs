// Runs an ONNX model with ONNX Runtime (onnxruntime-node from third_party/npm) to make reference
// outputs as .npy files, check a zoo directory against its outputs, or time the model (--bench).
//
// Usage (from the repository root):
//   node scripts/ort_reference.mjs --model M.onnx --inputs a.npy,b.npy --out DIR [--threads T]
//   node scripts/ort_reference.mjs --model M.onnx --random-inputs SEED [--dims name=v,...] --out DIR
//   node scripts/ort_reference.mjs --check models/zoo/resnet18 [--tolerance 1e-4]
//   node scripts/ort_reference.mjs --model M.onnx --random-inputs 0 --bench 50 --warmup 5 --threads 2
//   ... --bench 50 --profile PREFIX   also writes ONNX Runtime's per-node profile to PREFIX*.json
// --out DIR writes output_<k>.npy in the model's output order (and the inputs as input_<k>.npy
// when they were generated); --meta NAME also writes DIR/meta.json in the zoo's layout.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const requireFromPeers = createRequire(path.join(repositoryRoot, 'third_party/npm/package.json'));

function fail(message) {
  console.error(`ort_reference: ${message}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// .npy reading and writing (version 1.0-3.0 in, 1.0 out; little-endian, C order).

const NPY_TYPES = {
  '<f4': { ort: 'float32', array: Float32Array },
  '<f2': { ort: 'float16', array: Uint16Array },
  '<f8': { ort: 'float64', array: Float64Array },
  '<i8': { ort: 'int64', array: BigInt64Array },
  '<i4': { ort: 'int32', array: Int32Array },
  '|i1': { ort: 'int8', array: Int8Array },
  '|u1': { ort: 'uint8', array: Uint8Array },
  '|b1': { ort: 'bool', array: Uint8Array },
};
const DESCR_FOR_ORT_TYPE = Object.fromEntries(Object.entries(NPY_TYPES).map(([d, t]) => [t.ort, d]));

export function readNpy(file) {
  const bytes = fs.readFileSync(file);
  const where = `${file}: `;
  if (bytes.length < 10 || bytes.toString('latin1', 0, 6) !== '\x93NUMPY') fail(where + 'not a .npy file');
  const major = bytes[6];
  const headerStart = major === 1 ? 10 : 12;
  if (![1, 2, 3].includes(major) || bytes.length < headerStart) fail(where + `unsupported version ${major}`);
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  if (headerStart + headerLength > bytes.length) fail(where + 'truncated header');
  const header = bytes.toString('latin1', headerStart, headerStart + headerLength);
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) fail(where + `malformed header ${header.trim()}`);
  if (fortran === 'True') fail(where + 'fortran_order=True is not supported');
  let key = descr;
  if (['<u1', '<i1', '<b1'].includes(descr)) key = '|' + descr.slice(1);
  const type = NPY_TYPES[key];
  if (!type) fail(where + `unsupported dtype ${descr}`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) fail(where + `bad shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLength;
  if (bytes.length - dataStart !== count * type.array.BYTES_PER_ELEMENT)
    fail(where + `data length ${bytes.length - dataStart} does not match shape [${shape}] of ${descr}`);
  // Copy into a fresh (aligned) buffer for the typed array.
  const data = new type.array(bytes.buffer.slice(bytes.byteOffset + dataStart, bytes.byteOffset + bytes.length));
  return { type: type.ort, shape, data };
}

export function writeNpy(file, type, shape, data) {
  const descr = DESCR_FOR_ORT_TYPE[type];
  if (!descr) fail(`cannot write ONNX Runtime type ${type} as .npy`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const padded = Math.ceil((10 + header.length + 1) / 64) * 64 - 10;
  header = header.padEnd(padded - 1, ' ') + '\n';
  const preamble = Buffer.alloc(10);
  preamble.write('\x93NUMPY', 0, 'latin1');
  preamble[6] = 1;
  preamble[7] = 0;
  preamble.writeUInt16LE(header.length, 8);
  let payload;
  if (type === 'bool') payload = Buffer.from(Uint8Array.from(data, (v) => (v ? 1 : 0)));
  else payload = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([preamble, Buffer.from(header, 'latin1'), payload]));
}

// ---------------------------------------------------------------------------------------------
// Seeded inputs from the model's declared input types and shapes.

function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function resolveShape(metadata, dims) {
  if (!Array.isArray(metadata.shape)) fail(`input ${metadata.name} has no declared shape`);
  const missing = metadata.shape.filter((d) => !(typeof d === 'number' && d >= 0) && !(d in dims));
  if (missing.length)
    fail(`input '${metadata.name}' (declared shape [${metadata.shape.join(', ')}]) has symbolic dims; ` +
         `give them with --dims ${missing.map((d) => `${d}=VALUE`).join(',')}`);
  return metadata.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : dims[d]));
}

function randomInput(ort, metadata, dims, random, integerHigh) {
  const shape = resolveShape(metadata, dims);
  const count = shape.reduce((a, b) => a * b, 1);
  const type = metadata.type;
  let data;
  if (type === 'float32') data = Float32Array.from({ length: count }, () => random() * 2 - 1);
  else if (type === 'int64') data = BigInt64Array.from({ length: count }, () => BigInt(Math.floor(random() * integerHigh)));
  else if (type === 'int32') data = Int32Array.from({ length: count }, () => Math.floor(random() * integerHigh));
  else if (type === 'bool') data = Uint8Array.from({ length: count }, () => (random() < 0.5 ? 1 : 0));
  else if (type === 'uint8') data = Uint8Array.from({ length: count }, () => Math.floor(random() * 256));
  else fail(`--random-inputs does not generate type ${type} (input ${metadata.name})`);
  return { type, shape, data };
}

// ---------------------------------------------------------------------------------------------

function parseArguments(argv) {
  const options = { threads: 1, warmup: 5, tolerance: 1e-4, integerHigh: 100, dims: {} };
  const takesValue = new Set(['model', 'inputs', 'out', 'threads', 'random-inputs', 'dims', 'bench', 'warmup',
                              'check', 'tolerance', 'meta', 'integer-high', 'description', 'profile']);
  for (let i = 0; i < argv.length; ++i) {
    const name = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--') || !takesValue.has(name)) fail(`unknown argument ${argv[i]}`);
    const value = argv[++i];
    if (value === undefined) fail(`--${name} needs a value`);
    switch (name) {
      case 'threads': options.threads = Number(value); break;
      case 'warmup': options.warmup = Number(value); break;
      case 'bench': options.bench = Number(value); break;
      case 'tolerance': options.tolerance = Number(value); break;
      case 'integer-high': options.integerHigh = Number(value); break;
      case 'random-inputs': options.randomSeed = Number(value); break;
      case 'inputs': options.inputs = value.split(',').filter((s) => s.length); break;
      case 'dims':
        for (const pair of value.split(',').filter((s) => s.length)) {
          const [key, number] = pair.split('=');
          if (number === undefined || !Number.isInteger(Number(number))) fail(`bad --dims entry ${pair}`);
          options.dims[key] = Number(number);
        }
        break;
      default: options[name] = value;
    }
  }
  return options;
}

function summarize(values) {
  let maxAbs = 0;
  let sum = 0;
  for (const v of values) {
    const x = Number(v);
    maxAbs = Math.max(maxAbs, Math.abs(x));
    sum += x;
  }
  return { maxAbs, mean: values.length ? sum / values.length : 0 };
}

// Relative L2 error and max abs difference of actual against expected.
function compare(actual, expected) {
  let diff = 0;
  let norm = 0;
  let maxAbs = 0;
  for (let i = 0; i < expected.length; ++i) {
    const a = Number(actual[i]);
    const e = Number(expected[i]);
    diff += (a - e) * (a - e);
    norm += e * e;
    maxAbs = Math.max(maxAbs, Math.abs(a - e));
  }
  return { relative: Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30), maxAbs };
}

async function main() {
  const options = parseArguments(process.argv.slice(2));
  let checkMeta;
  if (options.check) {
    checkMeta = JSON.parse(fs.readFileSync(path.join(options.check, 'meta.json'), 'utf8'));
    options.model ??= path.join(options.check, checkMeta.model);
    options.inputs ??= checkMeta.inputs.map((input) => path.join(options.check, input.file));
  }
  if (!options.model) fail('--model (or --check DIR) is required');
  if (options.profile && options.bench === undefined) fail('--profile needs --bench N');

  let ort;
  try {
    ort = requireFromPeers('onnxruntime-node');
  } catch (error) {
    fail(`cannot load onnxruntime-node from third_party/npm (run scripts/setup.sh): ${error.message}`);
  }
  const session = await ort.InferenceSession.create(options.model, {
    intraOpNumThreads: options.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // ONNX Runtime writes the profile (a Chrome trace with each node's kernel time per run) when
    // the session is released, which the --bench path does explicitly.
    ...(options.profile ? { enableProfiling: true, profileFilePrefix: options.profile } : {}),
  });
  const inputMetadata = session.inputMetadata ?? session.inputNames.map((name) => ({ name }));

  let inputs;
  if (options.inputs) {
    if (options.inputs.length !== session.inputNames.length)
      fail(`model has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}), ` +
           `got ${options.inputs.length} files`);
    inputs = options.inputs.map((file) => readNpy(file));
  } else if (options.randomSeed !== undefined) {
    const random = mulberry32(options.randomSeed);
    inputs = inputMetadata.map((metadata) => randomInput(ort, metadata, options.dims, random, options.integerHigh));
  } else {
    fail('give --inputs FILES, --random-inputs SEED or --check DIR');
  }
  const feeds = {};
  session.inputNames.forEach((name, k) => {
    feeds[name] = new ort.Tensor(inputs[k].type, inputs[k].data, inputs[k].shape);
  });

  if (options.bench !== undefined) {
    for (let i = 0; i < options.warmup; ++i) await session.run(feeds);
    const times = [];
    for (let i = 0; i < options.bench; ++i) {
      const start = process.hrtime.bigint();
      await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    times.sort((a, b) => a - b);
    const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
    const median = times.length % 2 ? times[(times.length - 1) / 2]
                                    : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
    console.log(`median ${median.toFixed(3)} ms  p90 ${at(0.9).toFixed(3)} ms  ` +
                `(min ${times[0].toFixed(3)} ms, ${times.length} runs, ${options.threads} threads, ` +
                `onnxruntime-node ${ort.env.versions?.common ?? ''})`);
    if (options.profile) await session.release();  // writes the profile file
    return;
  }

  const results = await session.run(feeds);
  let failures = 0;
  session.outputNames.forEach((name, k) => {
    const output = results[name];
    const stats = summarize(output.data);
    let line = `${name}: ${output.type} [${output.dims.join(', ')}] max|x| ${stats.maxAbs.toPrecision(5)}`;
    if (checkMeta) {
      const expected = readNpy(path.join(options.check, checkMeta.outputs[k].file));
      if (expected.shape.join(',') !== output.dims.join(','))
        fail(`${name}: ORT shape [${output.dims}] but reference [${expected.shape}]`);
      const error = compare(output.data, expected.data);
      const ok = error.relative <= options.tolerance;
      if (!ok) ++failures;
      line += `  rel-L2 ${error.relative.toExponential(3)}  max-abs ${error.maxAbs.toExponential(3)} ${ok ? 'OK' : 'FAIL'}`;
    }
    console.log(line);
  });

  if (options.out) {
    fs.mkdirSync(options.out, { recursive: true });
    const meta = {
      name: options.meta ?? path.basename(options.out),
      model: path.relative(options.out, options.model),
      description: options.description ?? '',
      producer: 'onnxruntime-node ' + (ort.env.versions?.common ?? ''),
      inputs: [],
      outputs: [],
    };
    session.inputNames.forEach((name, k) => {
      const file = `input_${k}.npy`;
      const target = path.join(options.out, file);
      // Inputs given as files are copied only when they are not already in place.
      if (!options.inputs || path.resolve(options.inputs[k]) !== path.resolve(target))
        writeNpy(target, inputs[k].type, inputs[k].shape, inputs[k].data);
      meta.inputs.push({ name, file, shape: inputs[k].shape, dtype: inputs[k].type });
    });
    session.outputNames.forEach((name, k) => {
      const output = results[name];
      const file = `output_${k}.npy`;
      writeNpy(path.join(options.out, file), output.type, output.dims, output.data);
      meta.outputs.push({ name, file, shape: output.dims, dtype: output.type });
    });
    if (options.meta) fs.writeFileSync(path.join(options.out, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    console.log(`wrote ${session.outputNames.length} output(s) to ${options.out}`);
  }
  if (failures) process.exit(1);
}

main().catch((error) => fail(error.stack ?? String(error)));
