'use strict';

/**
 * ParityModel: a parity artifact directory (manifest.json + model.onnx) run with onnxruntime-node.
 */

const crypto = require('node:crypto');
const fs = require('node:fs/promises');
const path = require('node:path');

const {
  MISSING_STRING,
  TENSOR_TYPES,
  checkSignature,
  columnsToRecords,
  decodeTensor,
  encodeColumns,
  recordsToColumns,
} = require('./codec');
const { ArtifactError, IntegrityError } = require('./errors');

/** The artifact format this client reads (parity.artifact.FORMAT). */
const FORMAT = 'parity.artifact/1';
const MANIFEST = 'manifest.json';
const ONNX_FILE = 'model.onnx';

/**
 * @typedef {import('./codec').Signature} Signature
 * @typedef {import('./codec').ColumnValues} ColumnValues
 * @typedef {import('./codec').OutputValue} OutputValue
 *
 * @typedef {object} LoadOptions
 * @property {number} [threads] intra-op threads of the ONNX Runtime session; default
 *   `PARITY_ORT_THREADS` or 1, like the Python runtime (a server runs many requests at once and
 *   the graphs are small)
 * @property {import('onnxruntime-node').InferenceSession.SessionOptions} [sessionOptions]
 *   extra onnxruntime session options, merged over the defaults
 */

/**
 * @param {Buffer} data
 * @returns {string}
 */
function sha256(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/**
 * @param {string} file
 * @returns {Promise<Buffer | null>} the file's content, or null when it does not exist
 */
async function readIfExists(file) {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Deep-freeze a JSON value so callers cannot change the model's signature under it.
 * @template T
 * @param {T} value
 * @returns {T}
 */
function deepFreeze(value) {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

class ParityModel {
  /**
   * Use {@link ParityModel.load}.
   * @param {Record<string, any>} manifest
   * @param {import('onnxruntime-node').InferenceSession} session
   * @param {typeof import('onnxruntime-node')} ort
   * @param {string} dir
   */
  constructor(manifest, session, ort, dir) {
    /** @type {Readonly<Record<string, any>>} the parsed manifest.json (frozen) */
    this.manifest = deepFreeze(manifest);
    /** @type {Readonly<Signature>} inputs and outputs of the model (frozen) */
    this.signature = this.manifest.signature;
    /** @type {string} the artifact directory */
    this.path = dir;
    /**
     * Count of BYTES values outside the training categories seen so far, per column (missing
     * values excluded), like Artifact.unseen_counts in Python.
     * @type {Record<string, number>}
     */
    this.unseenCounts = {};
    this._session = session;
    this._ort = ort;
    /** @type {Map<string, Set<string>>} */
    this._categories = new Map();
    for (const c of this.signature.inputs) {
      if (Array.isArray(c.categories)) this._categories.set(c.name, new Set(c.categories));
    }
  }

  /**
   * Load and verify an artifact directory.
   *
   * Throws ArtifactError when the manifest is unreadable, of another format or the artifact is not
   * portable (it then needs the Python runtime), and IntegrityError when model.onnx (or any other
   * present file listed in the manifest) does not match its recorded sha256.
   * @param {string} dir artifact directory holding manifest.json and model.onnx
   * @param {LoadOptions} [options]
   * @returns {Promise<ParityModel>}
   */
  static async load(dir, options = {}) {
    const root = path.resolve(String(dir));
    const manifestPath = path.join(root, MANIFEST);
    const raw = await readIfExists(manifestPath);
    if (raw === null) throw new ArtifactError(`${root}: no ${MANIFEST}; is this a parity artifact directory?`);
    /** @type {Record<string, any>} */
    let manifest;
    try {
      manifest = JSON.parse(raw.toString('utf-8'));
    } catch (err) {
      throw new ArtifactError(`${manifestPath} is not valid JSON: ${/** @type {Error} */ (err).message}`);
    }
    if (!manifest || typeof manifest !== 'object') throw new ArtifactError(`${manifestPath} must hold a JSON object`);
    if (manifest.format !== FORMAT) {
      throw new ArtifactError(
        `${root}: unsupported artifact format ${JSON.stringify(manifest.format)}; this client reads ${JSON.stringify(FORMAT)}`,
      );
    }
    if (manifest.portable !== true) {
      const blocked = manifest.blocked_by || {};
      const step = blocked.step || 'a step';
      throw new ArtifactError(
        `${root}: artifact ${JSON.stringify(manifest.name)} is not portable: ${step} could not be exported to ONNX` +
          (blocked.reason ? ` (${blocked.reason})` : '') +
          '. It needs the Python runtime (parity.load(..., trusted=True) or the parity server) and cannot run in Node.',
      );
    }
    checkSignature(manifest.signature);
    const files = manifest.files && typeof manifest.files === 'object' ? manifest.files : {};
    if (!files[ONNX_FILE]) throw new ArtifactError(`${root}: the manifest lists no ${ONNX_FILE}`);

    /** @type {Buffer | null} */
    let model = null;
    for (const [name, meta] of Object.entries(files)) {
      if (name.includes('/') || name.includes('\\') || name.startsWith('.')) {
        throw new IntegrityError(`${root}: manifest lists a file outside the artifact: ${JSON.stringify(name)}`);
      }
      const data = await readIfExists(path.join(root, name));
      if (data === null) {
        // model.onnx is required; the other files (profile, parity sample) are optional for serving.
        if (name === ONNX_FILE) throw new IntegrityError(`${root}: ${ONNX_FILE} listed in the manifest is missing`);
        continue;
      }
      const actual = sha256(data);
      if (!meta || actual !== meta.sha256) {
        throw new IntegrityError(
          `${root}: file ${JSON.stringify(name)} was modified: sha256 ${actual} but the manifest records ${meta && meta.sha256}`,
        );
      }
      if (name === ONNX_FILE) model = data;
    }

    const ort = require('onnxruntime-node');
    const threads = options.threads ?? (Number.parseInt(process.env.PARITY_ORT_THREADS || '', 10) || 1);
    /** @type {import('onnxruntime-node').InferenceSession} */
    let session;
    try {
      session = await ort.InferenceSession.create(/** @type {Buffer} */ (model), {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
        ...options.sessionOptions,
      });
    } catch (err) {
      throw new ArtifactError(`${root}: onnxruntime cannot load ${ONNX_FILE}: ${/** @type {Error} */ (err).message}`, {
        cause: err,
      });
    }
    checkGraph(root, manifest.signature, session);
    return new ParityModel(manifest, session, ort, root);
  }

  /** @returns {string} model name */
  get name() {
    return this.manifest.name;
  }

  /** @returns {string} binary, multiclass or regression */
  get task() {
    return this.manifest.task;
  }

  /** @returns {string[]} raw input column names, in order */
  get inputNames() {
    return this.signature.inputs.map((c) => c.name);
  }

  /** @returns {string[]} output names, in order */
  get outputNames() {
    return this.signature.outputs.map((o) => o.name);
  }

  /**
   * Validate records and return one output record per input record, e.g.
   * `[{label: "yes", probability: 0.71}]`. Extra keys are ignored.
   * @param {Array<Record<string, unknown>>} records
   * @returns {Promise<Array<Record<string, OutputValue>>>}
   */
  async predict(records) {
    const outputs = await this.predictColumns(recordsToColumns(this.signature, records));
    return columnsToRecords(this.outputNames, outputs);
  }

  /**
   * Validate a mapping of column -> values (arrays or typed arrays) and return the outputs as
   * columns, e.g. `{label: ["yes", "no"], probability: [0.71, 0.2]}`.
   * @param {Record<string, ColumnValues>} columns
   * @returns {Promise<Record<string, OutputValue[]>>}
   */
  async predictColumns(columns) {
    const encoded = encodeColumns(this.signature, columns);
    this._countUnseen(encoded);
    /** @type {Record<string, import('onnxruntime-node').Tensor>} */
    const feeds = {};
    let rows = 0;
    for (const [name, col] of Object.entries(encoded)) {
      feeds[name] = new this._ort.Tensor(col.type, /** @type {any} */ (col.data), col.dims);
      rows = col.dims[0];
    }
    const results = await this._session.run(feeds, this.outputNames);
    /** @type {Record<string, OutputValue[]>} */
    const out = {};
    for (const name of this.outputNames) {
      const tensor = results[name];
      if (tensor.size !== rows) {
        throw new ArtifactError(
          `output ${JSON.stringify(name)} has shape [${tensor.dims.join(', ')}]; expected ${rows} values, one per row`,
        );
      }
      out[name] = decodeTensor(tensor);
    }
    return out;
  }

  /** Release the onnxruntime session. */
  async close() {
    await this._session.release();
  }

  /**
   * @param {Record<string, import('./codec').EncodedColumn>} encoded
   */
  _countUnseen(encoded) {
    for (const [name, known] of this._categories) {
      let unseen = 0;
      for (const v of /** @type {string[]} */ (encoded[name].data)) {
        if (v !== MISSING_STRING && !known.has(v)) unseen++;
      }
      if (unseen) this.unseenCounts[name] = (this.unseenCounts[name] || 0) + unseen;
    }
  }
}

/**
 * Check that the ONNX graph takes and returns what the signature declares.
 * @param {string} root
 * @param {Signature} signature
 * @param {import('onnxruntime-node').InferenceSession} session
 */
function checkGraph(root, signature, session) {
  const inputs = new Set(session.inputNames);
  const outputs = new Set(session.outputNames);
  const missingIn = signature.inputs.map((c) => c.name).filter((n) => !inputs.has(n));
  const missingOut = signature.outputs.map((o) => o.name).filter((n) => !outputs.has(n));
  const extraIn = session.inputNames.filter((n) => !signature.inputs.some((c) => c.name === n));
  if (missingIn.length || missingOut.length || extraIn.length) {
    throw new ArtifactError(
      `${root}: ${ONNX_FILE} does not match the manifest signature ` +
        `(graph inputs ${JSON.stringify(session.inputNames)}, outputs ${JSON.stringify(session.outputNames)})`,
    );
  }
  // inputMetadata exists in onnxruntime-node >= 1.22; check tensor types when it is there.
  const meta = /** @type {any} */ (session).inputMetadata;
  if (Array.isArray(meta)) {
    for (const m of meta) {
      const spec = signature.inputs.find((c) => c.name === m.name);
      if (spec && m.isTensor && m.type !== TENSOR_TYPES[spec.datatype]) {
        throw new ArtifactError(
          `${root}: ${ONNX_FILE} input ${JSON.stringify(m.name)} is a ${m.type} tensor but the manifest declares ${spec.datatype}`,
        );
      }
    }
  }
}

module.exports = { FORMAT, ParityModel };
