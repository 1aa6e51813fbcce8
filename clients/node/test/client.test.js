'use strict';

// node --test test/client.test.js   (npm test)
// Unit tests of the record -> tensor conversion need no model. The model tests load the artifact
// directory named by PARITY_TEST_ARTIFACT (tests/test_node_client.py builds one and sets it); the
// suite fails when it is not set.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { describe, test, after } = require('node:test');

const {
  ArtifactError,
  IntegrityError,
  MISSING_STRING,
  ParityModel,
  SchemaError,
  columnsToRecords,
  decodeTensor,
  encodeColumn,
  encodeColumns,
  encodeRecords,
  recordsToColumns,
} = require('../src/index');

/** @type {import('../src/index').Signature} */
const SIG = {
  inputs: [
    { name: 'age', datatype: 'FP64', nullable: true, shape: [-1] },
    { name: 'income', datatype: 'FP64', nullable: false, shape: [-1] },
    { name: 'score', datatype: 'FP32', nullable: true, shape: [-1] },
    { name: 'n', datatype: 'INT64', nullable: false, shape: [-1] },
    { name: 'k', datatype: 'INT32', nullable: false, shape: [-1] },
    { name: 'member', datatype: 'BOOL', nullable: false, shape: [-1] },
    { name: 'city', datatype: 'BYTES', nullable: true, shape: [-1], categories: ['a', 'b'] },
    { name: 'plan', datatype: 'BYTES', nullable: false, shape: [-1] },
  ],
  outputs: [
    { name: 'label', datatype: 'BYTES', shape: [-1], labels: ['no', 'yes'] },
    { name: 'probability', datatype: 'FP64', shape: [-1] },
  ],
};

const ROW = { age: 40.5, income: 10, score: 0.1, n: 3, k: -2, member: true, city: 'a', plan: 'pro' };

/**
 * @param {() => unknown} fn
 * @param {RegExp[]} patterns every pattern must match the message
 * @param {{column?: string, row?: number}} [where]
 */
function throwsSchema(fn, patterns, where = {}) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof SchemaError, `expected a SchemaError, got ${err}`);
    for (const p of patterns) assert.match(err.message, p);
    if ('column' in where) assert.equal(err.column, where.column);
    if ('row' in where) assert.equal(err.row, where.row);
    return true;
  });
}

describe('record -> tensor conversion', () => {
  test('each datatype becomes its tensor type', () => {
    const enc = encodeRecords(SIG, [ROW, { ...ROW, n: 2 ** 40, member: false }]);
    assert.deepEqual(Object.keys(enc), SIG.inputs.map((c) => c.name));
    assert.equal(enc.age.type, 'float64');
    assert.ok(enc.age.data instanceof Float64Array);
    assert.deepEqual(enc.age.dims, [2]);
    assert.equal(enc.score.type, 'float32');
    assert.ok(enc.score.data instanceof Float32Array);
    assert.equal(enc.score.data[0], Math.fround(0.1));
    assert.equal(enc.n.type, 'int64');
    assert.deepEqual(Array.from(/** @type {BigInt64Array} */ (enc.n.data)), [3n, 2n ** 40n]);
    assert.equal(enc.k.type, 'int32');
    assert.deepEqual(Array.from(/** @type {Int32Array} */ (enc.k.data)), [-2, -2]);
    assert.equal(enc.member.type, 'bool');
    assert.deepEqual(Array.from(/** @type {Uint8Array} */ (enc.member.data)), [1, 0]);
    assert.equal(enc.city.type, 'string');
    assert.deepEqual(enc.city.data, ['a', 'a']);
  });

  test('missing values: NaN for numbers, U+E000 for strings', () => {
    const enc = encodeRecords(SIG, [
      { ...ROW, age: null, score: undefined, city: null },
      { ...ROW, age: NaN, city: '' },
    ]);
    assert.ok(Number.isNaN(enc.age.data[0]) && Number.isNaN(enc.age.data[1]));
    assert.ok(Number.isNaN(enc.score.data[0]));
    assert.equal(MISSING_STRING, '\ue000');
    assert.deepEqual(enc.city.data, [MISSING_STRING, '']);
  });

  test('null in a non-nullable column names column, row, expected and received', () => {
    throwsSchema(
      () => encodeRecords(SIG, [ROW, ROW, { ...ROW, income: null }]),
      [/"income"/, /row 2/, /FP64 number/, /received null/, /not nullable/],
      { column: 'income', row: 2 },
    );
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, plan: null }]), [/"plan"/, /BYTES string/, /null/], {
      column: 'plan',
      row: 0,
    });
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, n: null }]), [/"n"/, /INT64/], { column: 'n' });
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, member: undefined }]), [/"member"/, /BOOL/], {
      column: 'member',
    });
  });

  test('wrong types are refused with the column and row', () => {
    throwsSchema(() => encodeRecords(SIG, [ROW, { ...ROW, age: '41' }]), [/"age"/, /row 1/, /string "41"/], {
      column: 'age',
      row: 1,
    });
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, city: 3 }]), [/"city"/, /BYTES string/, /number 3/], {
      column: 'city',
    });
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, n: 1.5 }]), [/"n"/, /INT64 integer/, /number 1.5/]);
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, n: 2n ** 64n }]), [/"n"/, /does not fit/]);
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, k: 2 ** 31 }]), [/"k"/, /does not fit in INT32/]);
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, member: 1 }]), [/"member"/, /BOOL boolean/, /number 1/]);
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, plan: { x: 1 } }]), [/"plan"/, /received object/]);
  });

  test('booleans are not numbers (as in Python); bigints are integers', () => {
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, age: true }]), [/"age"/, /boolean true at row 0/]);
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, n: false }]), [/"n"/, /boolean false/]);
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, k: true }]), [/"k"/, /boolean true/]);
    throwsSchema(() => encodeRecords(SIG, [{ ...ROW, n: Infinity }]), [/"n"/, /INT64 integer/]);
    const flag = { name: 'flag', datatype: 'FP64', nullable: true, shape: [-1], range: [0, 1] };
    assert.deepEqual(Array.from(encodeColumn(flag, [true, null, false]).data), [1, NaN, 0]);
    const enc = encodeRecords(SIG, [{ ...ROW, n: 7n, k: 5n }]);
    assert.equal(enc.n.data[0], 7n);
    assert.equal(enc.k.data[0], 5);
  });

  test('a missing key names the column and the record; extra keys are ignored', () => {
    const { city, ...noCity } = ROW;
    void city;
    throwsSchema(() => recordsToColumns(SIG, [ROW, noCity]), [/record 1/, /"city"/], { column: 'city', row: 1 });
    const cols = recordsToColumns(SIG, [{ ...ROW, extra: 'ignored' }]);
    assert.deepEqual(Object.keys(cols), SIG.inputs.map((c) => c.name));
    throwsSchema(() => recordsToColumns(SIG, /** @type {any} */ ([ROW, null])), [/record 1 must be an object/]);
    throwsSchema(() => recordsToColumns(SIG, /** @type {any} */ ({ age: 1 })), [/array of objects/]);
  });

  test('columns: missing, ragged and empty inputs are refused', () => {
    const cols = recordsToColumns(SIG, [ROW, ROW]);
    const { plan, ...rest } = cols;
    void plan;
    throwsSchema(() => encodeColumns(SIG, rest), [/missing input column\(s\) \["plan"\]/], { column: 'plan' });
    throwsSchema(() => encodeColumns(SIG, { ...cols, plan: ['x'] }), [/"plan" has 1 values; expected 2/]);
    throwsSchema(() => encodeRecords(SIG, []), [/no rows/]);
    throwsSchema(() => encodeColumn(SIG.inputs[0], /** @type {any} */ ('abc')), [/must be an array/]);
  });

  test('typed arrays are accepted as columns', () => {
    const enc = encodeColumn(SIG.inputs[0], Float64Array.from([1, NaN]));
    assert.equal(enc.data[0], 1);
    assert.ok(Number.isNaN(enc.data[1]));
    throwsSchema(() => encodeColumn(SIG.inputs[1], Float64Array.from([1, NaN])), [/"income"/, /row 1/]);
  });

  test('output tensors decode to plain JS values', () => {
    assert.deepEqual(decodeTensor({ type: 'int64', data: BigInt64Array.from([1n, -2n, 2n ** 60n]), dims: [3] }), [
      1,
      -2,
      2n ** 60n,
    ]);
    assert.deepEqual(decodeTensor({ type: 'bool', data: Uint8Array.from([1, 0]), dims: [2] }), [true, false]);
    assert.deepEqual(decodeTensor({ type: 'float64', data: Float64Array.from([0.5]), dims: [1] }), [0.5]);
    assert.deepEqual(decodeTensor({ type: 'string', data: ['yes'], dims: [1] }), ['yes']);
    assert.deepEqual(columnsToRecords(['label', 'p'], { label: ['a', 'b'], p: [1, 2] }), [
      { label: 'a', p: 1 },
      { label: 'b', p: 2 },
    ]);
  });
});

const ARTIFACT = process.env.PARITY_TEST_ARTIFACT;

// Without an artifact the model tests cannot run: that is a failure, never a silent skip.
test('PARITY_TEST_ARTIFACT names an artifact directory', () => {
  assert.ok(ARTIFACT, 'set PARITY_TEST_ARTIFACT to a portable parity artifact directory (tests/test_node_client.py does)');
  assert.ok(fs.existsSync(path.join(ARTIFACT, 'manifest.json')), `${ARTIFACT} has no manifest.json`);
});

describe('ParityModel on a real artifact', { skip: !ARTIFACT }, () => {
  const dir = /** @type {string} */ (ARTIFACT);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parity-node-test-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** @param {import('../src/index').ColumnSpec} c */
  function typical(c) {
    switch (c.datatype) {
      case 'BYTES':
        return c.categories && c.categories.length ? c.categories[0] : 'x';
      case 'BOOL':
        return true;
      case 'INT64':
      case 'INT32':
        return c.range ? Math.round((c.range[0] + c.range[1]) / 2) : 1;
      default:
        return c.range ? (c.range[0] + c.range[1]) / 2 : 0.5;
    }
  }

  /** @param {ParityModel} model */
  function records(model) {
    const row = Object.fromEntries(model.signature.inputs.map((c) => [c.name, typical(c)]));
    const nulls = Object.fromEntries(model.signature.inputs.map((c) => [c.name, c.nullable ? null : row[c.name]]));
    return [row, nulls, { ...row, unrelated: 'ignored' }];
  }

  /**
   * @param {string} name
   * @param {(d: string) => void} change
   */
  function copy(name, change) {
    const target = path.join(tmp, name);
    fs.cpSync(dir, target, { recursive: true });
    change(target);
    return target;
  }

  test('load, signature and predict', async () => {
    const model = await ParityModel.load(dir);
    try {
      assert.ok(model.signature.inputs.length > 0);
      assert.ok(Object.isFrozen(model.signature));
      const out = await model.predict(records(model));
      assert.equal(out.length, 3);
      for (const rec of out) {
        assert.deepEqual(Object.keys(rec), model.outputNames);
        for (const spec of model.signature.outputs) {
          const v = rec[spec.name];
          if (spec.datatype === 'FP64' || spec.datatype === 'FP32') assert.equal(typeof v, 'number');
          if (spec.datatype === 'BYTES') assert.equal(typeof v, 'string');
          if (spec.datatype === 'BOOL') assert.equal(typeof v, 'boolean');
          if (spec.labels) assert.ok(spec.labels.includes(/** @type {any} */ (v)), `${v} not in ${spec.labels}`);
        }
      }
      assert.deepEqual(out[2], out[0], 'extra keys change nothing');
      const cols = await model.predictColumns(recordsToColumns(model.signature, records(model)));
      assert.deepEqual(columnsToRecords(model.outputNames, cols), out);
    } finally {
      await model.close();
    }
  });

  test('schema errors from the model', async () => {
    const model = await ParityModel.load(dir);
    try {
      const [row] = records(model);
      const first = model.signature.inputs[0];
      const { [first.name]: _drop, ...partial } = row;
      void _drop;
      await assert.rejects(model.predict([row, partial]), (err) => {
        assert.ok(err instanceof SchemaError);
        assert.equal(err.column, first.name);
        assert.equal(err.row, 1);
        return true;
      });
      const strict = model.signature.inputs.find((c) => !c.nullable);
      if (strict) {
        await assert.rejects(model.predict([{ ...row, [strict.name]: null }]), new RegExp(`"${strict.name}".*row 0`));
      }
    } finally {
      await model.close();
    }
  });

  test('a modified model.onnx is refused', async () => {
    const bad = copy('tampered', (d) => fs.appendFileSync(path.join(d, 'model.onnx'), Buffer.from([0])));
    await assert.rejects(ParityModel.load(bad), (err) => err instanceof IntegrityError && /sha256/.test(err.message));
  });

  test('a non-portable artifact names the blocking step', async () => {
    const blocked = copy('blocked', (d) => {
      const file = path.join(d, 'manifest.json');
      const manifest = JSON.parse(fs.readFileSync(file, 'utf-8'));
      manifest.portable = false;
      manifest.blocked_by = { step: 'MyTransformer', reason: 'no converter' };
      fs.writeFileSync(file, JSON.stringify(manifest));
    });
    await assert.rejects(
      ParityModel.load(blocked),
      (err) => err instanceof ArtifactError && /MyTransformer/.test(err.message) && /Python runtime/.test(err.message),
    );
  });

  test('a directory without a manifest is refused', async () => {
    await assert.rejects(ParityModel.load(tmp), /no manifest\.json/);
  });
});
