'use strict';

/**
 * Records <-> tensors, following the artifact's signature. Pure JavaScript: nothing here needs
 * onnxruntime, so it is unit-testable without a model. The rules are those of the Python
 * package (parity/codec.py):
 *
 * - one 1-D tensor of length N per input column, named as the column;
 * - FP64 -> float64, FP32 -> float32, INT64 -> int64 (BigInt64Array), INT32 -> int32,
 *   BOOL -> bool, BYTES -> string;
 * - a missing value (null / undefined / NaN) in a nullable numeric column is NaN, in a nullable
 *   BYTES column the one-character string U+E000 (MISSING_STRING); anywhere else it is an error;
 * - booleans are not numbers: numeric columns refuse them, except the FP64 0/1/NaN column parity
 *   makes of a training bool column with nulls (nullable, range [0, 1]), as in Python; numbers are
 *   not accepted in BYTES or BOOL columns, strings are not accepted in numeric columns;
 * - integer columns refuse non-finite, fractional and out-of-range values, naming column and row;
 * - keys of a record that are not inputs of the model are ignored.
 */

const { ArtifactError, SchemaError } = require('./errors');

/**
 * @typedef {'FP64' | 'FP32' | 'INT64' | 'INT32' | 'BOOL' | 'BYTES'} Datatype
 *
 * @typedef {object} ColumnSpec One raw input column of the signature.
 * @property {string} name column name, also the name of the ONNX input
 * @property {Datatype} datatype Open Inference Protocol datatype
 * @property {boolean} nullable whether the training data had missing values in this column
 * @property {number[]} [shape] always [-1]
 * @property {string[]} [categories] distinct training values of a BYTES column
 * @property {[number, number]} [range] training minimum and maximum of a numeric column
 *
 * @typedef {object} OutputSpec One declared output, also the name of the ONNX output.
 * @property {string} name
 * @property {Datatype} datatype
 * @property {number[]} [shape]
 * @property {string} [description]
 * @property {Array<string | number | boolean>} [labels] possible values of a label output
 *
 * @typedef {object} Signature
 * @property {ColumnSpec[]} inputs raw input columns, in order
 * @property {OutputSpec[]} outputs business outputs, in order
 *
 * @typedef {'float64' | 'float32' | 'int64' | 'int32' | 'bool' | 'string'} TensorType
 *
 * @typedef {Float64Array | Float32Array | BigInt64Array | Int32Array | Uint8Array | string[]} TensorData
 *
 * @typedef {object} EncodedColumn What an onnxruntime Tensor is built from.
 * @property {TensorType} type
 * @property {TensorData} data
 * @property {number[]} dims always [N]
 *
 * @typedef {number | bigint | string | boolean | null} OutputValue
 * A decoded output value: numbers (NaN stays NaN), int64 as a number when it is a safe integer
 * (else a bigint), strings, booleans.
 *
 * @typedef {ArrayLike<unknown>} ColumnValues an Array or a typed array
 */

/** A missing string travels through ONNX as this one-character value (parity.schema.MISSING_STRING). */
const MISSING_STRING = '\ue000';

/** @type {readonly Datatype[]} */
const DATATYPES = Object.freeze(['FP64', 'FP32', 'INT64', 'INT32', 'BOOL', 'BYTES']);

/** @type {Readonly<Record<Datatype, TensorType>>} */
const TENSOR_TYPES = Object.freeze({
  FP64: 'float64',
  FP32: 'float32',
  INT64: 'int64',
  INT32: 'int32',
  BOOL: 'bool',
  BYTES: 'string',
});

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const TWO_63 = 2 ** 63;
const utf8 = new TextDecoder('utf-8');

/**
 * Short description of a received value for error messages, e.g. `string "abc"`, `null`.
 * @param {unknown} value
 * @returns {string}
 */
function describe(value) {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 40)}...` : value;
    return `string ${JSON.stringify(shown)}`;
  }
  if (typeof value === 'bigint') return `bigint ${value}n`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${value}`;
  if (Array.isArray(value)) return 'array';
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  return typeof value;
}

/**
 * @param {unknown} v
 * @returns {boolean} true for null, undefined and NaN: the JSON spellings of a missing value
 */
function isMissing(v) {
  return v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v));
}

/** @param {string} name */
const q = (name) => JSON.stringify(name);

/**
 * Booleans are not numbers, except in the FP64 column made of a bool column with nulls (parity.codec.accepts_booleans).
 * @param {ColumnSpec} spec
 * @returns {boolean}
 */
function acceptsBooleans(spec) {
  const range = spec.range;
  return spec.datatype === 'FP64' && spec.nullable && Array.isArray(range) && range[0] === 0 && range[1] === 1;
}

/**
 * @param {ColumnSpec} spec
 * @returns {string} what the column accepts, e.g. "FP64 number or null"
 */
function expected(spec) {
  const what = {
    FP64: 'FP64 number',
    FP32: 'FP32 number',
    INT64: 'INT64 integer',
    INT32: 'INT32 integer',
    BOOL: 'BOOL boolean',
    BYTES: 'BYTES string',
  }[spec.datatype];
  return spec.nullable && !spec.datatype.startsWith('INT') && spec.datatype !== 'BOOL' ? `${what} or null` : what;
}

/**
 * @param {ColumnSpec} spec
 * @param {number} row
 * @param {unknown} value
 * @returns {SchemaError}
 */
function typeError(spec, row, value) {
  return new SchemaError(
    `column ${q(spec.name)} expects ${expected(spec)}; received ${describe(value)} at row ${row}`,
    { column: spec.name, row },
  );
}

/**
 * @param {ColumnSpec} spec
 * @param {number} row
 * @returns {SchemaError}
 */
function nullError(spec, row) {
  const why = spec.nullable
    ? `${spec.datatype} tensors cannot hold a missing value`
    : 'not nullable: the training data had no missing values';
  return new SchemaError(
    `column ${q(spec.name)} (${why}) expects ${expected(spec)}; received null at row ${row}`,
    { column: spec.name, row },
  );
}

/**
 * @param {ColumnSpec} spec
 * @param {ColumnValues} values
 * @returns {Float64Array | Float32Array}
 */
function encodeFloat(spec, values) {
  const out = spec.datatype === 'FP32' ? new Float32Array(values.length) : new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'number' && !Number.isNaN(v)) {
      out[i] = v;
    } else if (isMissing(v)) {
      if (!spec.nullable) throw nullError(spec, i);
      out[i] = NaN;
    } else if (typeof v === 'boolean' && acceptsBooleans(spec)) {
      out[i] = v ? 1 : 0;
    } else if (typeof v === 'bigint') {
      out[i] = Number(v);
    } else {
      throw typeError(spec, i, v);
    }
  }
  return out;
}

/**
 * @param {ColumnSpec} spec
 * @param {ColumnValues} values
 * @returns {BigInt64Array}
 */
function encodeInt64(spec, values) {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'number' && Number.isInteger(v)) {
      if (v >= TWO_63 || v < -TWO_63) throw outOfRange(spec, i, v);
      out[i] = BigInt(v);
    } else if (typeof v === 'bigint') {
      if (v < INT64_MIN || v > INT64_MAX) throw outOfRange(spec, i, v);
      out[i] = v;
    } else if (isMissing(v)) {
      throw nullError(spec, i);
    } else {
      throw typeError(spec, i, v);
    }
  }
  return out;
}

/**
 * @param {ColumnSpec} spec
 * @param {ColumnValues} values
 * @returns {Int32Array}
 */
function encodeInt32(spec, values) {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    let v = values[i];
    if (typeof v === 'bigint' && v >= -(2n ** 31n) && v < 2n ** 31n) v = Number(v);
    if (typeof v === 'number' && Number.isInteger(v)) {
      if (v < -(2 ** 31) || v >= 2 ** 31) throw outOfRange(spec, i, v);
      out[i] = v;
    } else if (typeof v === 'bigint') {
      throw outOfRange(spec, i, v);
    } else if (isMissing(v)) {
      throw nullError(spec, i);
    } else {
      throw typeError(spec, i, v);
    }
  }
  return out;
}

/**
 * @param {ColumnSpec} spec
 * @param {number} row
 * @param {number | bigint} value
 * @returns {SchemaError}
 */
function outOfRange(spec, row, value) {
  return new SchemaError(
    `column ${q(spec.name)} expects ${expected(spec)}; received ${describe(value)} at row ${row}, ` +
      `which does not fit in ${spec.datatype}`,
    { column: spec.name, row },
  );
}

/**
 * @param {ColumnSpec} spec
 * @param {ColumnValues} values
 * @returns {Uint8Array}
 */
function encodeBool(spec, values) {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'boolean') out[i] = v ? 1 : 0;
    else if (isMissing(v)) throw nullError(spec, i);
    else throw typeError(spec, i, v);
  }
  return out;
}

/**
 * @param {ColumnSpec} spec
 * @param {ColumnValues} values
 * @returns {string[]}
 */
function encodeText(spec, values) {
  const out = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'string') {
      out[i] = v;
    } else if (isMissing(v)) {
      if (!spec.nullable) throw nullError(spec, i);
      out[i] = MISSING_STRING;
    } else if (v instanceof Uint8Array) {
      out[i] = utf8.decode(v);
    } else {
      throw typeError(spec, i, v);
    }
  }
  return out;
}

/**
 * @param {unknown} values
 * @returns {values is ColumnValues}
 */
function isColumn(values) {
  return Array.isArray(values) || (ArrayBuffer.isView(values) && !(values instanceof DataView));
}

/**
 * Validate one column and return it as the typed data of its tensor.
 * @param {ColumnSpec} spec
 * @param {ColumnValues} values
 * @returns {EncodedColumn}
 */
function encodeColumn(spec, values) {
  if (!isColumn(values)) {
    throw new SchemaError(`column ${q(spec.name)} must be an array of values; received ${describe(values)}`, {
      column: spec.name,
    });
  }
  /** @type {TensorData} */
  let data;
  switch (spec.datatype) {
    case 'FP64':
    case 'FP32':
      data = encodeFloat(spec, values);
      break;
    case 'INT64':
      data = encodeInt64(spec, values);
      break;
    case 'INT32':
      data = encodeInt32(spec, values);
      break;
    case 'BOOL':
      data = encodeBool(spec, values);
      break;
    case 'BYTES':
      data = encodeText(spec, values);
      break;
    default:
      throw new ArtifactError(`column ${q(spec.name)} has unknown datatype ${q(String(spec.datatype))}`);
  }
  return { type: TENSOR_TYPES[spec.datatype], data, dims: [values.length] };
}

/**
 * Validate a mapping of column -> values against the signature. Extra columns are ignored.
 * @param {Signature} signature
 * @param {Record<string, ColumnValues>} columns
 * @returns {Record<string, EncodedColumn>} one entry per input of the signature
 */
function encodeColumns(signature, columns) {
  if (columns === null || typeof columns !== 'object' || Array.isArray(columns)) {
    throw new SchemaError(`the input must be an object of column: values; received ${describe(columns)}`);
  }
  const names = signature.inputs.map((c) => c.name);
  const missing = names.filter((n) => !(n in columns));
  if (missing.length) {
    throw new SchemaError(
      `missing input column(s) ${JSON.stringify(missing)}; the model takes ${JSON.stringify(names)}`,
      { column: missing[0] },
    );
  }
  /** @type {Record<string, EncodedColumn>} */
  const out = {};
  /** @type {number | undefined} */
  let rows;
  for (const spec of signature.inputs) {
    const encoded = encodeColumn(spec, columns[spec.name]);
    const n = encoded.dims[0];
    if (rows === undefined) rows = n;
    else if (n !== rows) {
      throw new SchemaError(`column ${q(spec.name)} has ${n} values; expected ${rows} like the other columns`, {
        column: spec.name,
      });
    }
    out[spec.name] = encoded;
  }
  if (!rows) throw new SchemaError('the input has no rows; send at least one row');
  return out;
}

/**
 * Turn records (`[{column: value}]`) into columns, naming the row of a missing key.
 * @param {Signature} signature
 * @param {ArrayLike<Record<string, unknown>>} records
 * @returns {Record<string, unknown[]>}
 */
function recordsToColumns(signature, records) {
  if (!Array.isArray(records)) {
    throw new SchemaError(`records must be an array of objects; received ${describe(records)}`);
  }
  /** @type {Record<string, unknown[]>} */
  const cols = {};
  for (const spec of signature.inputs) cols[spec.name] = new Array(records.length);
  for (let i = 0; i < records.length; i++) {
    const rec = records[i];
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) {
      throw new SchemaError(`record ${i} must be an object of column: value; received ${describe(rec)}`, { row: i });
    }
    for (const spec of signature.inputs) {
      if (!(spec.name in rec)) {
        throw new SchemaError(
          `record ${i} is missing input column ${q(spec.name)} (${expected(spec)}); ` +
            `the model takes ${JSON.stringify(signature.inputs.map((c) => c.name))}`,
          { column: spec.name, row: i },
        );
      }
      cols[spec.name][i] = rec[spec.name];
    }
  }
  return cols;
}

/**
 * Convert records to encoded tensors in one step.
 * @param {Signature} signature
 * @param {ArrayLike<Record<string, unknown>>} records
 * @returns {Record<string, EncodedColumn>}
 */
function encodeRecords(signature, records) {
  return encodeColumns(signature, recordsToColumns(signature, records));
}

/**
 * Turn the data of an output tensor into plain JavaScript values.
 * @param {{type: string, data: unknown, dims: readonly number[]}} tensor
 * @returns {OutputValue[]}
 */
function decodeTensor(tensor) {
  const data = /** @type {ArrayLike<unknown>} */ (tensor.data);
  switch (tensor.type) {
    case 'int64':
    case 'uint64':
      return Array.from(/** @type {ArrayLike<bigint>} */ (data), (v) => {
        const n = Number(v);
        return Number.isSafeInteger(n) ? n : v;
      });
    case 'bool':
      return Array.from(data, (v) => Boolean(v));
    case 'string':
    case 'float64':
    case 'float32':
    case 'float16':
    case 'int32':
    case 'int16':
    case 'int8':
    case 'uint32':
    case 'uint16':
    case 'uint8':
      return /** @type {OutputValue[]} */ (Array.from(data));
    default:
      throw new ArtifactError(`the model returned a ${tensor.type} tensor, which the parity client cannot read`);
  }
}

/**
 * Columns of outputs -> one record per row.
 * @param {string[]} names output names, in order
 * @param {Record<string, OutputValue[]>} columns
 * @returns {Array<Record<string, OutputValue>>}
 */
function columnsToRecords(names, columns) {
  const n = names.length ? columns[names[0]].length : 0;
  /** @type {Array<Record<string, OutputValue>>} */
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    /** @type {Record<string, OutputValue>} */
    const rec = {};
    for (const name of names) rec[name] = columns[name][i];
    out[i] = rec;
  }
  return out;
}

/**
 * Check the shape of a manifest signature; throw ArtifactError when it is unusable.
 * @param {unknown} sig
 * @returns {Signature}
 */
function checkSignature(sig) {
  const s = /** @type {any} */ (sig);
  if (!s || !Array.isArray(s.inputs) || !Array.isArray(s.outputs)) {
    throw new ArtifactError('manifest.signature must have "inputs" and "outputs" lists');
  }
  for (const c of s.inputs) {
    if (!c || typeof c.name !== 'string' || !DATATYPES.includes(c.datatype) || typeof c.nullable !== 'boolean') {
      throw new ArtifactError(`manifest.signature.inputs has an invalid column: ${JSON.stringify(c)}`);
    }
  }
  for (const o of s.outputs) {
    if (!o || typeof o.name !== 'string' || !DATATYPES.includes(o.datatype)) {
      throw new ArtifactError(`manifest.signature.outputs has an invalid output: ${JSON.stringify(o)}`);
    }
  }
  if (!s.outputs.length) throw new ArtifactError('manifest.signature declares no outputs');
  return s;
}

module.exports = {
  DATATYPES,
  MISSING_STRING,
  TENSOR_TYPES,
  checkSignature,
  columnsToRecords,
  decodeTensor,
  encodeColumn,
  encodeColumns,
  encodeRecords,
  recordsToColumns,
};
