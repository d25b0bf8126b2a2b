#!/usr/bin/env node
// adam.js: a dependency-free Node.js (20+) port of tf.keras.optimizers.Adam as TF 2.0 runs it
// (spec/adam.md), speaking the kit's pipe protocol adam-pipe/1 (spec/pipe-protocol.md) on stdin/stdout.
//
//   node ports/js/adam.js                               the conforming port
//   node ports/js/adam.js --variant=algorithm1-epsilon  deliberately wrong: epsilon on the corrected root
//   pytest --candidate-command="node ports/js/adam.js"  how the kit runs it
//
// Like the float64 oracle (reference/adam.py), every step is computed in float64 and each stored value
// (variable, m, v, vhat) is rounded to the session's dtype; all four dtypes are rounded exactly
// (round to nearest, ties to even), so the port agrees with the oracle bit for bit.
'use strict';
const readline = require('readline');

const PROTOCOL = 'adam-pipe/1';
let variant = null;
for (const arg of process.argv.slice(2)) {
  if (arg === '--variant=algorithm1-epsilon') variant = 'algorithm1-epsilon';
  else {
    process.stderr.write(`adam.js: unknown argument ${JSON.stringify(arg)} (known: --variant=algorithm1-epsilon)\n`);
    process.exit(2);
  }
}

// --- exact binary floating point -----------------------------------------------------------------

const f64 = new Float64Array(1), u64 = new BigUint64Array(f64.buffer), u32 = new Uint32Array(f64.buffer);
const f32 = new Float32Array(1), b32 = new Uint32Array(f32.buffer); // a float32 and its bits

function pow2(e) { // exactly 2**e, -1074 <= e <= 1023 (built from bits: Math.pow is not required to be exact)
  if (e < -1022) return pow2(e + 52) * pow2(-52); // a subnormal power of two: the product is exact
  u64[0] = BigInt(e + 1023) << 52n;
  return f64[0];
}

function ldexp(x, e) { // x * 2**e in steps that stay exact while the final result is representable
  for (; e > 1023; e -= 1023) x *= pow2(1023);
  for (; e < -1022; e += 1022) x *= pow2(-1022);
  return x * pow2(e);
}

// Rounds a double to a binary format with p significand bits and exponents emin..emax, directly
// (never through float32, which would round twice), with gradual underflow and overflow to Infinity.
function roundToFormat(x, p, emin, emax) {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  f64[0] = a;
  const e = Math.max(((u32[1] >>> 20) & 0x7ff) - 1023, emin); // exponent of a, at least emin (subnormals)
  const quantum = pow2(e - p + 1);
  const r = (a / quantum + 4503599627370496) - 4503599627370496; // + 2**52 - 2**52: ties-to-even integer
  const y = r * quantum;
  return Math.sign(x) * (y > (2 - pow2(1 - p)) * pow2(emax) ? Infinity : y);
}

const DTYPES = {
  float64: { size: 8, round: (x) => x },
  float32: { size: 4, round: Math.fround },
  float16: { size: 2, round: (x) => roundToFormat(x, 11, -14, 15) },
  bfloat16: { size: 2, round: (x) => roundToFormat(x, 8, -126, 127) },
};

function halfBits(x) { // an exact float16 value as its bit pattern
  const sign = (x < 0 || Object.is(x, -0)) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (Number.isNaN(x)) return 0x7e00;
  if (a === Infinity) return sign | 0x7c00;
  if (a < pow2(-14)) return sign | (a / pow2(-24)); // subnormal: a multiple of 2**-24
  f64[0] = a;
  const e = ((u32[1] >>> 20) & 0x7ff) - 1023;
  return sign | ((e + 15) << 10) | ((a / pow2(e) - 1) * 1024);
}

function halfValue(h) {
  const sign = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0x1f) return f ? NaN : sign * Infinity;
  return sign * (e === 0 ? f * pow2(-24) : (1024 + f) * pow2(e - 25));
}

// 1 - beta**t formed exactly and rounded once, as the oracle does with fractions: in floating point the
// rounding of beta**t is magnified by the cancellation (ADAM-UPDATE-1; spec section E, E-4).
function oneMinusPower(beta, t) {
  if (!Number.isFinite(beta)) return 1 - beta ** t;
  if (beta === 0) return 1;
  if (Math.abs(beta) < 1 && t * Math.log2(Math.abs(beta)) < -80) return 1; // beta**t below half an ulp of 1
  f64[0] = Math.abs(beta);
  const biased = Number(u64[0] >> 52n);
  let mant = u64[0] & 0xfffffffffffffn, exp = biased === 0 ? -1074 : biased - 1075;
  if (biased !== 0) mant |= 1n << 52n;
  while (!(mant & 1n)) { mant >>= 1n; exp += 1; } // keep the integers small: 0.875 is 7 * 2**-3
  if (beta < 0) mant = -mant;
  const power = mant ** BigInt(t), k = exp * t; // beta**t = power * 2**k
  return k >= 0 ? bigToDouble(1n - (power << BigInt(k)), 0) : bigToDouble((1n << BigInt(-k)) - power, k);
}

function bigToDouble(n, k) { // the double nearest to n * 2**k (n a BigInt), ties to even
  if (n === 0n) return 0;
  const negative = n < 0n;
  if (negative) n = -n;
  const lsb = Math.max(n.toString(2).length + k - 53, -1074); // weight of the last bit a double can keep
  let q = n;
  if (lsb > k) {
    const drop = BigInt(lsb - k), half = 1n << (drop - 1n);
    q = n >> drop;
    const rest = n - (q << drop);
    if (rest > half || (rest === half && (q & 1n))) q += 1n;
  } else q = n << BigInt(k - lsb);
  const x = ldexp(Number(q), lsb); // q <= 2**53: Number(q) is exact
  return negative ? -x : x;
}

// --- P-2: arrays --------------------------------------------------------------------------------------

const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1; // typed arrays use the host's byte order
const count = (shape) => shape.reduce((a, b) => a * b, 1);
const sameShape = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);

function decode(obj, dtype, what) { // -> {shape, data: Float64Array of values exact in dtype}
  if (!obj || typeof obj !== 'object' || !Array.isArray(obj.shape) || typeof obj.data !== 'string') throw new Error(`${what} is not an array object`);
  if (obj.dtype !== dtype) throw new Error(`${what} has dtype ${obj.dtype}; the session's dtype is ${dtype}`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(obj.data) || obj.data.length % 4) throw new Error(`${what}: data is not padded base64`);
  const bytes = Buffer.from(obj.data, 'base64'), n = count(obj.shape), size = DTYPES[dtype].size;
  if (bytes.length !== n * size) throw new Error(`${what}: ${bytes.length} bytes for shape [${obj.shape}] of ${dtype}`);
  if (LITTLE && (dtype === 'float32' || dtype === 'float64')) { // fast path: a typed array over an aligned copy
    const aligned = new Uint8Array(bytes).buffer;
    return { shape: obj.shape.slice(), data: Float64Array.from(dtype === 'float32' ? new Float32Array(aligned) : new Float64Array(aligned)) };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length), data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (dtype === 'float64') data[i] = view.getFloat64(8 * i, true);
    else if (dtype === 'float32') data[i] = view.getFloat32(4 * i, true);
    else if (dtype === 'bfloat16') { b32[0] = view.getUint16(2 * i, true) << 16; data[i] = f32[0]; }
    else data[i] = halfValue(view.getUint16(2 * i, true));
  }
  return { shape: obj.shape.slice(), data };
}

function encode(data, shape, dtype) {
  if (LITTLE && (dtype === 'float32' || dtype === 'float64')) {
    const typed = dtype === 'float32' ? Float32Array.from(data) : data; // exact: values are already rounded
    return { dtype, shape, data: Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength).toString('base64') };
  }
  const size = DTYPES[dtype].size, bytes = Buffer.alloc(data.length * size);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let i = 0; i < data.length; i++) {
    if (dtype === 'float64') view.setFloat64(8 * i, data[i], true);
    else if (dtype === 'float32') view.setFloat32(4 * i, data[i], true);
    else if (dtype === 'float16') view.setUint16(2 * i, halfBits(data[i]), true);
    else { // bfloat16: the upper half of the (exact) float32
      f32[0] = data[i];
      view.setUint16(2 * i, Number.isNaN(data[i]) ? 0x7fc0 : b32[0] >>> 16, true);
    }
  }
  return { dtype, shape, data: bytes.toString('base64') };
}

// A P-2 gradient as a dense float64 gradient; sparse rows with equal indices are summed in order of
// appearance, and rows without an index get 0, so the whole of m and v decays (ADAM-SPARSE-1/2).
function denseGradient(g, variable, dtype, what) {
  if (g.indices === undefined) {
    const dense = decode(g, dtype, what);
    if (!sameShape(dense.shape, variable.shape)) throw new Error(`${what} has shape [${dense.shape}], the variable [${variable.shape}]`);
    return dense.data;
  }
  const { indices, dense_shape: denseShape } = g, values = decode(g.values, dtype, `${what}.values`);
  if (!Array.isArray(denseShape) || !sameShape(denseShape, variable.shape)) throw new Error(`${what}: dense_shape [${denseShape}] is not the variable's shape [${variable.shape}]`);
  const row = count(denseShape.slice(1));
  if (!Array.isArray(indices) || !sameShape(values.shape, [indices.length, ...denseShape.slice(1)])) throw new Error(`${what}: values of shape [${values.shape}] do not fit ${indices.length} indices`);
  const dense = new Float64Array(variable.data.length);
  indices.forEach((index, k) => {
    if (!Number.isInteger(index) || index < 0 || index >= denseShape[0]) throw new Error(`${what}: index ${index} out of range`);
    for (let j = 0; j < row; j++) dense[index * row + j] += values.data[k * row + j];
  });
  return dense;
}

// --- the optimizer -----------------------------------------------------------------------------------

const HYPERS = ['learning_rate', 'beta_1', 'beta_2', 'epsilon'];
const DEFAULTS = { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, decay: 0 }; // ADAM-DEFAULTS-1
const sessions = new Map();

// The hyperparameters of one call (reference/adam.py, call_hyperparameters): the value in force (a callable's
// value sent with this apply, a schedule at the 0-based iterations), stored as float32 except epsilon
// (ADAM-TF2-HYPER-1), cast to the dtype (ADAM-DTYPE-1), then the legacy decay, rounded again (ADAM-HYPER-4).
function callHyperparameters(s, callables) {
  const value = {}, round = DTYPES[s.dtype].round;
  for (const name of HYPERS) {
    const h = s.hyper[name];
    if (typeof h === 'number') value[name] = h;
    else if (h.callable === true) {
      if (typeof callables[name] !== 'number') throw new Error(`apply: no value for the callable ${name}`);
      value[name] = callables[name];
    } else {
      if (s.iterations >= h.schedule.length) throw new Error(`the learning-rate schedule has no value for step ${s.iterations}`);
      value[name] = h.schedule[s.iterations];
    }
  }
  const hp = { decay: s.hyper.decay, ...value };
  for (const name of ['learning_rate', 'beta_1', 'beta_2', 'decay']) hp[name] = Math.fround(hp[name]);
  for (const name of [...HYPERS, 'decay']) hp[name] = round(hp[name]);
  if (hp.decay > 0) hp.learning_rate = round(hp.learning_rate / (1 + hp.decay * s.iterations));
  return hp;
}

function update(s, variable, g, hp, t) {
  const n = variable.data.length, round = DTYPES[s.dtype].round;
  for (const slot of s.amsgrad ? ['m', 'v', 'vhat'] : ['m', 'v']) variable[slot] ||= new Float64Array(n); // ADAM-INIT-1
  const { data: x, m: ms, v: vs, vhat: hs } = variable;
  const { learning_rate: lr, beta_1: b1, beta_2: b2, epsilon } = hp;
  const c1 = oneMinusPower(b1, t), c2 = oneMinusPower(b2, t);
  const alpha = lr * Math.sqrt(c2) / c1; // ADAM-UPDATE-1
  for (let i = 0; i < n; i++) {
    const m = b1 * ms[i] + (1 - b1) * g[i]; // ADAM-UPDATE-2
    const v = b2 * vs[i] + (1 - b2) * (g[i] * g[i]); // ADAM-UPDATE-3
    let w = v;
    if (s.amsgrad) { w = Math.max(hs[i], v); hs[i] = round(w); } // ADAM-AMSGRAD-1/2: max over the raw v
    x[i] = round(variant === 'algorithm1-epsilon'
      ? x[i] - lr * (m / c1) / (Math.sqrt(w / c2) + epsilon) // the wrong variant: Algorithm 1's epsilon
      : x[i] - (alpha * m) / (Math.sqrt(w) + epsilon)); // ADAM-UPDATE-4: epsilon hat
    ms[i] = round(m);
    vs[i] = round(v);
  }
}

function session(req) {
  const s = sessions.get(req.session);
  if (!s) throw new Error(`no open session ${req.session}`);
  return s;
}

const OPS = {
  hello(req) {
    if (req.protocol !== PROTOCOL) throw new Error(`this port speaks ${PROTOCOL}, not ${req.protocol}`);
    return { protocol: PROTOCOL, name: variant ? `adam.js --variant=${variant}` : 'adam.js', version: '1.0',
      supports: { dtypes: Object.keys(DTYPES), amsgrad: true, sparse: true, state_loading: true, slots: ['m', 'v', 'vhat'],
        iterations: true, callables: true, schedule: true, decay: true } };
  },
  create(req) {
    if (!Number.isInteger(req.session) || req.session < 1) throw new Error('create: session must be a positive integer');
    if (sessions.has(req.session)) throw new Error(`session ${req.session} is already open`);
    if (!(req.dtype in DTYPES)) return { unsupported: `dtype ${req.dtype}` };
    const hyper = { decay: 0, ...(req.hyperparameters ?? DEFAULTS) }; // null: the constructor's defaults
    for (const name of HYPERS) {
      const h = hyper[name];
      const ok = typeof h === 'number' || (h && h.callable === true) ||
        (name === 'learning_rate' && h && Array.isArray(h.schedule) && h.schedule.every((x) => typeof x === 'number'));
      if (!ok) throw new Error(`create: bad hyperparameter ${name}: ${JSON.stringify(h)}`);
    }
    if (typeof hyper.decay !== 'number' || hyper.decay < 0) throw new Error(`create: expected decay >= 0, got ${hyper.decay}`);
    if (typeof hyper.epsilon === 'number') hyper.epsilon ||= 1e-7; // ADAM-TF2-EPS-1: a falsy epsilon becomes 1e-7
    const variables = new Map();
    for (const [name, array] of Object.entries(req.variables ?? {})) {
      const { shape, data } = decode(array, req.dtype, `variables.${name}`);
      variables.set(name, { shape, data, m: null, v: null, vhat: null });
    }
    sessions.set(req.session, { dtype: req.dtype, amsgrad: req.amsgrad === true, hyper, variables, iterations: 0 });
    return {};
  },
  apply(req) {
    const s = session(req), grads = [];
    for (const [name, g] of Object.entries(req.gradients ?? {})) {
      const variable = s.variables.get(name);
      if (!variable) throw new Error(`apply: no variable ${name} in session ${req.session}`);
      if (g !== null) grads.push([variable, denseGradient(g, variable, s.dtype, `gradients.${name}`)]); // ADAM-ITER-2
    }
    if (!grads.length) throw new Error('ValueError: no gradients provided for any variable'); // ADAM-ITER-3
    const hp = callHyperparameters(s, req.callables ?? {}); // once per call: one t, one set of values (ADAM-MULTI-1)
    for (const [variable, g] of grads) update(s, variable, g, hp, s.iterations + 1); // ADAM-STEP-1
    s.iterations += 1; // ADAM-ITER-1
    return {};
  },
  read(req) {
    const s = session(req), variables = Object.create(null); // no prototype: a variable may be named __proto__
    const out = (a, shape) => (a ? encode(a, shape, s.dtype) : null);
    for (const [name, x] of s.variables) {
      variables[name] = { variable: out(x.data, x.shape), m: out(x.m, x.shape), v: out(x.v, x.shape), vhat: out(x.vhat, x.shape) };
    }
    return { iterations: s.iterations, variables };
  },
  load(req) { // decode everything first, so that a bad request changes nothing
    const s = session(req), staged = [];
    if (!Number.isInteger(req.iterations) || req.iterations < 0) throw new Error('load: iterations must be a non-negative integer');
    for (const [name, state] of Object.entries(req.variables ?? {})) {
      const x = s.variables.get(name);
      if (!x) throw new Error(`load: no variable ${name} in session ${req.session}`);
      const arrays = {};
      for (const key of ['variable', 'm', 'v', 'vhat']) {
        if (state[key] == null || (key === 'vhat' && !s.amsgrad)) { arrays[key] = null; continue; } // null: not created yet
        const a = decode(state[key], s.dtype, `variables.${name}.${key}`);
        if (!sameShape(a.shape, x.shape)) throw new Error(`load: variables.${name}.${key} has shape [${a.shape}], expected [${x.shape}]`);
        arrays[key] = a.data;
      }
      if (!arrays.variable) throw new Error(`load: variables.${name}.variable is missing`);
      staged.push([x, arrays]);
    }
    for (const [x, arrays] of staged) Object.assign(x, { data: arrays.variable, m: arrays.m, v: arrays.v, vhat: arrays.vhat });
    s.iterations = req.iterations;
    return {};
  },
  close(req) {
    sessions.delete(req.session);
    return {};
  },
};

// --- P-1: one JSON line in, one JSON line out, in order ------------------------------------------------

function answer(line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (err) { // no parsable id: take one from the text if there is one (the schema wants an integer)
    const id = /"id"\s*:\s*(\d+)/.exec(line);
    return { id: id ? Number(id[1]) : 0, status: 'error', message: `the request is not JSON: ${err.message}` };
  }
  const id = req && Number.isInteger(req.id) && req.id >= 0 ? req.id : 0;
  try {
    if (!req || typeof req !== 'object' || Array.isArray(req)) throw new Error('the request is not a JSON object');
    if (!Object.hasOwn(OPS, req.op)) throw new Error(`unknown op ${JSON.stringify(req.op)}`);
    const result = OPS[req.op](req);
    if (result.unsupported) return { id, status: 'unsupported', reason: result.unsupported };
    return { id, status: 'ok', ...result };
  } catch (err) {
    return { id, status: 'error', message: String(err && err.message ? err.message : err) };
  }
}

process.stdout.on('error', () => process.exit(0)); // the kit went away
readline.createInterface({ input: process.stdin, crlfDelay: Infinity }).on('line', (line) => {
  if (line.trim()) process.stdout.write(JSON.stringify(answer(line)) + '\n');
});
