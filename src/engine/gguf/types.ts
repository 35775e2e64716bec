/** ggml tensor types that Butterfly reads (values are ggml's on-disk enum). */
export enum GGMLType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
}

export interface TypeTraits {
  readonly name: string;
  /** elements per block */
  readonly blockSize: number;
  /** bytes per block */
  readonly bytesPerBlock: number;
}

export const TYPE_TRAITS: Readonly<Record<number, TypeTraits>> = {
  [GGMLType.F32]: { name: 'F32', blockSize: 1, bytesPerBlock: 4 },
  [GGMLType.F16]: { name: 'F16', blockSize: 1, bytesPerBlock: 2 },
  [GGMLType.BF16]: { name: 'BF16', blockSize: 1, bytesPerBlock: 2 },
  [GGMLType.Q8_0]: { name: 'Q8_0', blockSize: 32, bytesPerBlock: 34 },
  [GGMLType.Q4_0]: { name: 'Q4_0', blockSize: 32, bytesPerBlock: 18 },
  [GGMLType.Q4_K]: { name: 'Q4_K', blockSize: 256, bytesPerBlock: 144 },
  [GGMLType.Q5_K]: { name: 'Q5_K', blockSize: 256, bytesPerBlock: 176 },
  [GGMLType.Q6_K]: { name: 'Q6_K', blockSize: 256, bytesPerBlock: 210 },
  [GGMLType.Q8_K]: { name: 'Q8_K', blockSize: 256, bytesPerBlock: 292 },
};

export function isSupportedType(t: number): t is GGMLType {
  return t in TYPE_TRAITS && t !== GGMLType.Q8_K;
}

export function typeName(t: number): string {
  return TYPE_TRAITS[t]?.name ?? `ggml type ${t}`;
}

/** Bytes taken by one row of `cols` elements of type `t` (cols must be a multiple of the block size). */
export function rowBytes(t: GGMLType, cols: number): number {
  const tr = TYPE_TRAITS[t];
  if (!tr) throw new Error(`unsupported tensor type ${t}`);
  if (cols % tr.blockSize !== 0) throw new Error(`${tr.name} needs rows that are a multiple of ${tr.blockSize}, got ${cols}`);
  return (cols / tr.blockSize) * tr.bytesPerBlock;
}
