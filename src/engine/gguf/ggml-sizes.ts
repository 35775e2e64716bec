import { TYPE_TRAITS, type TypeTraits } from './types.js';

/**
 * Block layouts of ggml types Butterfly cannot compute with but must still size, so a file holding
 * such a tensor opens (a stage may never read it) and is still checked for truncation.
 * Values are ggml's (block elements, bytes per block), from gguf-py's GGML_QUANT_SIZES.
 */
const OTHER_GGML_TYPES: Readonly<Record<number, TypeTraits>> = {
  3: { name: 'Q4_1', blockSize: 32, bytesPerBlock: 20 },
  6: { name: 'Q5_0', blockSize: 32, bytesPerBlock: 22 },
  7: { name: 'Q5_1', blockSize: 32, bytesPerBlock: 24 },
  9: { name: 'Q8_1', blockSize: 32, bytesPerBlock: 36 },
  10: { name: 'Q2_K', blockSize: 256, bytesPerBlock: 84 },
  11: { name: 'Q3_K', blockSize: 256, bytesPerBlock: 110 },
  16: { name: 'IQ2_XXS', blockSize: 256, bytesPerBlock: 66 },
  17: { name: 'IQ2_XS', blockSize: 256, bytesPerBlock: 74 },
  18: { name: 'IQ3_XXS', blockSize: 256, bytesPerBlock: 98 },
  19: { name: 'IQ1_S', blockSize: 256, bytesPerBlock: 50 },
  20: { name: 'IQ4_NL', blockSize: 32, bytesPerBlock: 18 },
  21: { name: 'IQ3_S', blockSize: 256, bytesPerBlock: 110 },
  22: { name: 'IQ2_S', blockSize: 256, bytesPerBlock: 82 },
  23: { name: 'IQ4_XS', blockSize: 256, bytesPerBlock: 136 },
  24: { name: 'I8', blockSize: 1, bytesPerBlock: 1 },
  25: { name: 'I16', blockSize: 1, bytesPerBlock: 2 },
  26: { name: 'I32', blockSize: 1, bytesPerBlock: 4 },
  27: { name: 'I64', blockSize: 1, bytesPerBlock: 8 },
  28: { name: 'F64', blockSize: 1, bytesPerBlock: 8 },
  29: { name: 'IQ1_M', blockSize: 256, bytesPerBlock: 56 },
  34: { name: 'TQ1_0', blockSize: 256, bytesPerBlock: 54 },
  35: { name: 'TQ2_0', blockSize: 256, bytesPerBlock: 66 },
  39: { name: 'MXFP4', blockSize: 32, bytesPerBlock: 17 },
};

/** Block layout of any ggml type we can size (supported or not); undefined if unknown. */
export function ggmlBlockLayout(type: number): TypeTraits | undefined {
  return TYPE_TRAITS[type] ?? OTHER_GGML_TYPES[type];
}

/** A type name for messages: "Q4_1 (ggml type 3)" or "ggml type 99". */
export function describeGgmlType(type: number): string {
  const layout = ggmlBlockLayout(type);
  return layout ? `${layout.name} (ggml type ${type})` : `ggml type ${type}`;
}
