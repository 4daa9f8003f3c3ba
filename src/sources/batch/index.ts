/**
 * The batch formats `session.read` knows: importing this module registers each one with
 * registerBatchReader (sources/batch.ts). A new format is a file here that registers itself, imported below.
 */
import './json.js';
import './csv.js';
import './parquet.js';
import './kafka.js';
