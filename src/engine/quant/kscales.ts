/**
 * The 12-byte scale/min field of Q4_K and Q5_K: eight 6-bit scales and eight 6-bit mins (ggml `get_scale_min_k4`).
 * Bytes 0–3 hold scales 0–3 in their low 6 bits, bytes 4–7 mins 0–3 likewise; bytes 8–11 hold the low 4 bits of
 * scale j+4 (low nibble) and min j+4 (high nibble); the top 2 bits of scale j+4 / min j+4 sit in bits 6–7 of
 * byte j / byte j+4.
 */

export const K_SCALE_BYTES = 12;

/** Unpack the 8 scales and 8 mins of the field at src[o..o+12) into sc[outOffset..+8) and mn[outOffset..+8). */
export function unpackScaleMinK4(src: Uint8Array, o: number, sc: Uint8Array, mn: Uint8Array, outOffset: number): void {
  for (let j = 0; j < 4; j++) {
    sc[outOffset + j] = src[o + j]! & 63;
    mn[outOffset + j] = src[o + j + 4]! & 63;
  }
  for (let j = 4; j < 8; j++) {
    sc[outOffset + j] = (src[o + j + 4]! & 0xf) | ((src[o + j - 4]! >> 6) << 4);
    mn[outOffset + j] = (src[o + j + 4]! >> 4) | ((src[o + j]! >> 6) << 4);
  }
}

/** Inverse of unpackScaleMinK4: sc/mn values must be 0..63. */
export function packScaleMinK4(sc: ArrayLike<number>, mn: ArrayLike<number>, dst: Uint8Array, o: number): void {
  for (let j = 0; j < 4; j++) {
    dst[o + j] = (sc[j]! & 63) | ((sc[j + 4]! >> 4) << 6);
    dst[o + j + 4] = (mn[j]! & 63) | ((mn[j + 4]! >> 4) << 6);
    dst[o + j + 8] = (sc[j + 4]! & 0xf) | ((mn[j + 4]! & 0xf) << 4);
  }
}
