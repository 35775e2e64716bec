export * from './types.js';
export * from './values.js';
export * from './errors.js';
export * from './reader.js';
export * from './writer.js';
export { ggmlBlockLayout, describeGgmlType } from './ggml-sizes.js';
