/**
 * Tiny runtime checkers for JSON control parts. A peer's JSON is untrusted input: every field a handler reads is
 * checked here first, and a violation becomes a ProtocolError naming the exact field.
 */
import { ProtocolError } from './errors.js';

export type Check<T> = (value: unknown, path: string) => T;

function fail(path: string, what: string, value: unknown): never {
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : Array.isArray(value) ? 'an array' : String(value);
  throw new ProtocolError('bad-payload', `${path} must be ${what}, got ${shown}`);
}

export const str: Check<string> = (v, p) => (typeof v === 'string' ? v : fail(p, 'a string', v));

export const bool: Check<boolean> = (v, p) => (typeof v === 'boolean' ? v : fail(p, 'a boolean', v));

/** A finite number. */
export const num: Check<number> = (v, p) => (typeof v === 'number' && Number.isFinite(v) ? v : fail(p, 'a finite number', v));

/** A non-negative safe integer (sizes, offsets, ids, layer indices). */
export const count: Check<number> = (v, p) =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : fail(p, 'a non-negative integer', v);

/** Lower-case hex of exactly `bytes` bytes (nonces, proofs, hashes). */
export function hex(bytes: number): Check<string> {
  const re = new RegExp(`^[0-9a-f]{${bytes * 2}}$`);
  return (v, p) => (typeof v === 'string' && re.test(v) ? v : fail(p, `${bytes} bytes of lower-case hex`, v));
}

/** A string of 1..maxChars characters. */
export function text(maxChars: number): Check<string> {
  return (v, p) => (typeof v === 'string' && v.length > 0 && v.length <= maxChars ? v : fail(p, `a non-empty string of at most ${maxChars} characters`, v));
}

export function oneOf<const T extends readonly string[]>(...values: T): Check<T[number]> {
  return (v, p) => (typeof v === 'string' && values.includes(v) ? (v as T[number]) : fail(p, `one of ${values.join(', ')}`, v));
}

export function arrayOf<T>(item: Check<T>, maxItems = 1_000_000): Check<T[]> {
  return (v, p) => {
    if (!Array.isArray(v)) return fail(p, 'an array', v);
    if (v.length > maxItems) return fail(p, `an array of at most ${maxItems} items`, `${v.length} items`);
    return v.map((x, i) => item(x, `${p}[${i}]`));
  };
}

export function nullable<T>(inner: Check<T>): Check<T | null> {
  return (v, p) => (v === null ? null : inner(v, p));
}

/** A field newer peers send and older ones omit: absent (or null) reads as null. */
export function optional<T>(inner: Check<T>): Check<T | null> {
  return (v, p) => (v === null || v === undefined ? null : inner(v, p));
}

export type Shape<T> = { readonly [K in keyof T]-?: Check<T[K]> };

/**
 * Check an object field by field. Unknown extra fields are dropped rather than rejected, so a newer peer can add
 * optional fields without breaking an older one.
 */
export function object<T>(shape: Shape<T>): Check<T> {
  const keys = Object.keys(shape) as (keyof T & string)[];
  return (v, p) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(p, 'an object', v);
    const src = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      const checked = shape[k](src[k], `${p}.${k}`);
      if (checked !== undefined) out[k] = checked;
    }
    return out as T;
  };
}
