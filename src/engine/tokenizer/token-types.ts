/** GGUF's tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
export enum TokenType {
  UNDEFINED = 0,
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

/**
 * Attribute bits derived from the token type, as llama.cpp keeps them. A token can gain CONTROL on top of its
 * type (end-of-generation tokens typed NORMAL are promoted), so types alone are not enough.
 */
export const ATTR_UNKNOWN = 1 << 0;
export const ATTR_UNUSED = 1 << 1;
export const ATTR_NORMAL = 1 << 2;
export const ATTR_CONTROL = 1 << 3;
export const ATTR_USER_DEFINED = 1 << 4;
export const ATTR_BYTE = 1 << 5;

export function attrFromType(t: number): number {
  switch (t) {
    case TokenType.NORMAL:
      return ATTR_NORMAL;
    case TokenType.UNKNOWN:
      return ATTR_UNKNOWN;
    case TokenType.CONTROL:
      return ATTR_CONTROL;
    case TokenType.USER_DEFINED:
      return ATTR_USER_DEFINED;
    case TokenType.UNUSED:
      return ATTR_UNUSED;
    case TokenType.BYTE:
      return ATTR_BYTE;
    default:
      return 0;
  }
}
