'use strict';

/**
 * Errors thrown by the parity Node client. They mirror the Python package's exceptions
 * (parity.errors) so the same mistake reads the same in every language.
 */

/** Base class of every error raised by @parity/client. */
class ParityError extends Error {
  /**
   * @param {string} message
   * @param {ErrorOptions} [options]
   */
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The artifact directory cannot be used: bad manifest, wrong format, not portable. */
class ArtifactError extends ParityError {}

/** A file of the artifact is missing or does not match the sha256 recorded in the manifest. */
class IntegrityError extends ArtifactError {}

/** Inputs do not match the model's signature (missing column, wrong type, null where not allowed). */
class SchemaError extends ParityError {
  /**
   * @param {string} message
   * @param {{column?: string, row?: number}} [where] the offending input column and row, when known
   */
  constructor(message, where = {}) {
    super(message);
    /** @type {string | undefined} name of the offending input column */
    this.column = where.column;
    /** @type {number | undefined} 0-based index of the offending row */
    this.row = where.row;
  }
}

module.exports = { ParityError, ArtifactError, IntegrityError, SchemaError };
