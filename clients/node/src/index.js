'use strict';

/**
 * @parity/client: run parity model artifacts from Node.js with onnxruntime-node.
 *
 *     const { ParityModel } = require('@parity/client');
 *     const model = await ParityModel.load('out/churn');
 *     const rows = await model.predict([{ age: 42, city: 'Lyon', income: null }]);
 *
 * @module @parity/client
 */

const codec = require('./codec');
const errors = require('./errors');
const { FORMAT, ParityModel } = require('./model');

/**
 * @typedef {import('./codec').Signature} Signature
 * @typedef {import('./codec').ColumnSpec} ColumnSpec
 * @typedef {import('./codec').OutputSpec} OutputSpec
 * @typedef {import('./codec').Datatype} Datatype
 * @typedef {import('./codec').OutputValue} OutputValue
 * @typedef {import('./codec').EncodedColumn} EncodedColumn
 * @typedef {import('./model').LoadOptions} LoadOptions
 */

module.exports = {
  ParityModel,
  FORMAT,
  MISSING_STRING: codec.MISSING_STRING,
  DATATYPES: codec.DATATYPES,
  TENSOR_TYPES: codec.TENSOR_TYPES,
  encodeColumn: codec.encodeColumn,
  encodeColumns: codec.encodeColumns,
  encodeRecords: codec.encodeRecords,
  recordsToColumns: codec.recordsToColumns,
  decodeTensor: codec.decodeTensor,
  columnsToRecords: codec.columnsToRecords,
  ParityError: errors.ParityError,
  ArtifactError: errors.ArtifactError,
  IntegrityError: errors.IntegrityError,
  SchemaError: errors.SchemaError,
};
