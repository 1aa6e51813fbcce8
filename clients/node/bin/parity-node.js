#!/usr/bin/env node
'use strict';

/**
 * parity-node DIR INPUT.json [OUTPUT.json]
 *
 * Run a parity artifact on JSON records. INPUT is a JSON array of records or JSON lines (one
 * record per line); "-" reads standard input. The outputs are written as a JSON array of
 * records (one per line) to OUTPUT, or to standard output. Missing values are null; int64
 * outputs beyond 2^53 are written as exact JSON integers.
 *
 * Exit status: 0 on success, 2 for a usage or input error (bad JSON, records that do not match
 * the signature), 1 when the artifact cannot be loaded or run.
 */

const fs = require('node:fs');
const path = require('node:path');

const { ParityModel, SchemaError } = require('../src/index');

const USAGE = `usage: parity-node DIR INPUT.json [OUTPUT.json]

  DIR          parity artifact directory (manifest.json + model.onnx)
  INPUT.json   JSON array of records, or JSON lines; "-" for standard input
  OUTPUT.json  where to write the outputs (a JSON array of records); default standard output
`;

/** Wrong command-line arguments: exit 2 with the usage. */
class UsageError extends Error {}

/** Unreadable or invalid input file: exit 2. */
class InputError extends Error {}

/**
 * @param {string} text
 * @param {string} source
 * @returns {Array<Record<string, unknown>>}
 */
function parseRecords(text, source) {
  const body = text.replace(/^\uFEFF/, '').trim();
  if (!body) throw new InputError(`${source} is empty; expected a JSON array of records or JSON lines`);
  if (body.startsWith('[')) {
    try {
      return JSON.parse(body);
    } catch (err) {
      throw new InputError(`${source} is not valid JSON: ${/** @type {Error} */ (err).message}`);
    }
  }
  const records = [];
  const lines = body.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    try {
      records.push(JSON.parse(line));
    } catch (err) {
      // One pretty-printed object rather than JSON lines?
      try {
        const whole = JSON.parse(body);
        if (whole && typeof whole === 'object') return [whole];
      } catch {
        // report the line below
      }
      throw new InputError(`${source} line ${i + 1} is not valid JSON: ${/** @type {Error} */ (err).message}`);
    }
  }
  return records;
}

/**
 * JSON for one output value: exact integers for bigint, null for NaN and infinities.
 * @param {unknown} v
 * @returns {string}
 */
function jsonValue(v) {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && !Number.isFinite(v)) return 'null';
  return JSON.stringify(v);
}

/**
 * @param {Array<Record<string, unknown>>} records
 * @param {string[]} names
 * @returns {string}
 */
function formatRecords(records, names) {
  const keys = names.map((n) => JSON.stringify(n));
  const lines = records.map((rec) => `{${names.map((n, j) => `${keys[j]}: ${jsonValue(rec[n])}`).join(', ')}}`);
  return lines.length ? `[\n${lines.join(',\n')}\n]\n` : '[]\n';
}

/**
 * @param {string[]} argv
 * @returns {Promise<number>}
 */
async function main(argv) {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (argv.length < 2 || argv.length > 3) throw new UsageError(`expected 2 or 3 arguments, got ${argv.length}`);
  const [dir, input, output] = argv;
  let text;
  try {
    text = input === '-' ? fs.readFileSync(0, 'utf-8') : fs.readFileSync(input, 'utf-8');
  } catch (err) {
    throw new InputError(`cannot read ${input}: ${/** @type {Error} */ (err).message}`);
  }
  const records = parseRecords(text, input === '-' ? 'standard input' : input);
  const model = await ParityModel.load(dir);
  try {
    const outputs = await model.predict(records);
    const json = formatRecords(outputs, model.outputNames);
    if (output) {
      fs.mkdirSync(path.dirname(path.resolve(output)), { recursive: true });
      fs.writeFileSync(output, json);
    } else {
      process.stdout.write(json);
    }
  } finally {
    await model.close();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    const plain = err instanceof UsageError || err instanceof InputError;
    process.stderr.write(`parity-node: ${plain ? 'error' : err.name}: ${err.message}\n`);
    if (err instanceof UsageError) process.stderr.write(USAGE);
    process.exitCode = plain || err instanceof SchemaError ? 2 : 1;
  },
);
