/** Public surface of the transport: frames, messages, auth, connections and endpoints. */
export * from './errors.js';
export * from './crc32c.js';
export * from './frame.js';
export * from './message-types.js';
export * from './messages.js';
export * from './tensor-bytes.js';
export * from './auth.js';
export * from './connection.js';
export * from './handshake.js';
export * from './endpoints.js';
