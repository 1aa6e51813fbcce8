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

exports.ParityModel = ParityModel;
exports.FORMAT = FORMAT;
exports.MISSING_STRING = codec.MISSING_STRING;
exports.DATATYPES = codec.DATATYPES;
exports.TENSOR_TYPES = codec.TENSOR_TYPES;
exports.encodeColumn = codec.encodeColumn;
exports.encodeColumns = codec.encodeColumns;
exports.encodeRecords = codec.encodeRecords;
exports.recordsToColumns = codec.recordsToColumns;
exports.decodeTensor = codec.decodeTensor;
exports.columnsToRecords = codec.columnsToRecords;
exports.ParityError = errors.ParityError;
exports.ArtifactError = errors.ArtifactError;
exports.IntegrityError = errors.IntegrityError;
exports.SchemaError = errors.SchemaError;
