/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI, ext4 and gRPC.
 * Castagnoli rather than zlib's CRC-32 because it detects more error patterns in long messages. Slicing-by-16
 * over aligned 32-bit words: it runs over every activation and every streamed weight byte. Measured on the 2-vCPU
 * dev VM: ~1.5–1.7 GB/s (byte-at-a-time slicing-by-16: ~1.3 GB/s; native zlib.crc32, a different polynomial: ~2.2 GB/s).
 */
import { endianness } from 'node:os';

const POLY_REFLECTED = 0x82f63b78;
const SLICES = 16;
/** Below this a Uint32Array view costs more than it saves. */
const WORD_PATH_MIN_BYTES = 64;

// The word path reads bytes through a Uint32Array, which takes the host's byte order.
if (endianness() !== 'LE') throw new Error('butterfly transport needs a little-endian host');

/** TABLES[k*256 + b] = CRC register after byte b followed by k zero bytes; one flat array keeps lookups monomorphic. */
const TABLES: Uint32Array = buildTables();

function buildTables(): Uint32Array {
  const t = new Uint32Array(256 * SLICES);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY_REFLECTED : c >>> 1;
    t[b] = c >>> 0;
  }
  for (let b = 0; b < 256; b++) {
    let c = t[b]!;
    for (let s = 1; s < SLICES; s++) {
      c = (c >>> 8) ^ t[c & 0xff]!;
      t[s * 256 + b] = c >>> 0;
    }
  }
  return t;
}

/**
 * Continue a CRC-32C over `bytes`. Start with `crc = 0`; feeding a message in pieces gives the same result as
 * feeding it whole: `crc32c(b, crc32c(a)) === crc32c(concat(a, b))`.
 */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  const t = TABLES;
  const n = bytes.length;
  let c = ~crc >>> 0;
  let i = 0;
  if (n >= WORD_PATH_MIN_BYTES) {
    while ((bytes.byteOffset + i) & 3) c = (c >>> 8) ^ t[(c ^ bytes[i++]!) & 0xff]!;
    const blocks = (n - i) >>> 4;
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset + i, blocks * 4);
    for (let j = 0; j < w.length; j += 4) {
      const a = c ^ w[j]!;
      const b = w[j + 1]!;
      const d = w[j + 2]!;
      const e = w[j + 3]!;
      c =
        t[3840 + (a & 0xff)]! ^
        t[3584 + ((a >>> 8) & 0xff)]! ^
        t[3328 + ((a >>> 16) & 0xff)]! ^
        t[3072 + (a >>> 24)]! ^
        t[2816 + (b & 0xff)]! ^
        t[2560 + ((b >>> 8) & 0xff)]! ^
        t[2304 + ((b >>> 16) & 0xff)]! ^
        t[2048 + (b >>> 24)]! ^
        t[1792 + (d & 0xff)]! ^
        t[1536 + ((d >>> 8) & 0xff)]! ^
        t[1280 + ((d >>> 16) & 0xff)]! ^
        t[1024 + (d >>> 24)]! ^
        t[768 + (e & 0xff)]! ^
        t[512 + ((e >>> 8) & 0xff)]! ^
        t[256 + ((e >>> 16) & 0xff)]! ^
        t[e >>> 24]!;
    }
    i += blocks * 16;
  }
  while (i < n) c = (c >>> 8) ^ t[(c ^ bytes[i++]!) & 0xff]!;
  return ~c >>> 0;
}
