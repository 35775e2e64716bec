import { GgufValueType, type GgufMetaEntry } from '../gguf/values.js';
import type { GgufMetadataSource } from './from-gguf.js';

/**
 * An in-memory GgufMetadataSource over writer-style entries, so a tokenizer can be built from metadata we are
 * about to write (or in tests) without a file round trip.
 */
export function metadataSource(entries: ReadonlyArray<readonly [string, GgufMetaEntry]>): GgufMetadataSource {
  const map = new Map<string, GgufMetaEntry>(entries.map(([k, v]) => [k, v]));
  const scalar = (key: string, want: string): unknown => {
    const e = map.get(key);
    if (!e) return undefined;
    if (e.type === GgufValueType.ARRAY) throw new Error(`metadata ${key} is an array, expected ${want}`);
    return e.value;
  };
  return {
    has: (key) => map.has(key),
    getString(key, fallback) {
      const v = scalar(key, 'a string');
      if (v === undefined && fallback !== undefined) return fallback;
      if (typeof v !== 'string') throw new Error(`metadata ${key} is missing or not a string`);
      return v;
    },
    getNumber(key, fallback) {
      const v = scalar(key, 'a number');
      if (v === undefined && fallback !== undefined) return fallback;
      if (typeof v === 'bigint') return Number(v);
      if (typeof v !== 'number') throw new Error(`metadata ${key} is missing or not a number`);
      return v;
    },
    getBool(key, fallback) {
      const v = scalar(key, 'a bool');
      if (v === undefined && fallback !== undefined) return fallback;
      if (typeof v !== 'boolean') throw new Error(`metadata ${key} is missing or not a bool`);
      return v;
    },
    getArray(key) {
      const e = map.get(key);
      if (!e || e.type !== GgufValueType.ARRAY) throw new Error(`metadata ${key} is missing or not an array`);
      return e.value;
    },
  };
}
