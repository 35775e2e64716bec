/**
 * Wire numbers of Butterfly messages. Grouped in blocks of 16 so related messages can be added without
 * renumbering; numbers are part of the protocol — never reuse or change one, add a new one instead.
 */
export enum MessageType {
  // handshake (0x01..)
  HELLO = 0x01,
  CHALLENGE = 0x02,
  AUTH = 0x03,
  WELCOME = 0x04,
  REFUSED = 0x05,
  // membership (0x10..)
  JOIN = 0x10,
  HEARTBEAT = 0x11,
  LEAVE = 0x12,
  // loading (0x20..)
  ASSIGN = 0x20,
  TENSOR_CHUNK = 0x21,
  LOAD_PROGRESS = 0x22,
  LOADED = 0x23,
  // inference (0x30..)
  FORWARD = 0x30,
  RESULT = 0x31,
  TRUNCATE = 0x32,
  // control (0x40..)
  ERROR = 0x40,
  SHUTDOWN = 0x41,
}

const NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(MessageType)
    .filter((e): e is [string, number] => typeof e[1] === 'number')
    .map(([name, value]) => [value, name]),
);

export function isMessageType(t: number): t is MessageType {
  return NAMES.has(t);
}

/** 'FORWARD' for a known type, 'type 0x1234' otherwise — for log lines and errors. */
export function messageTypeName(t: number): string {
  return NAMES.get(t) ?? `type 0x${t.toString(16).padStart(4, '0')}`;
}
