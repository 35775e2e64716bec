/**
 * Typed payloads for every message type, their runtime checks, and encode/decode between messages and frames.
 * To add a message: give it a number in message-types.ts, a payload interface and a Shape here, and (if it
 * carries a tensor) a binary-length rule in `checkBinary`.
 */
import { ProtocolError } from './errors.js';
import { type Frame, type FrameToEncode } from './frame.js';
import { arrayOf, bool, count, hex, nullable, num, object, oneOf, optional, str, text, type Check } from './json-shape.js';
import { MessageType, isMessageType, messageTypeName } from './message-types.js';
import { WIRE_DTYPES, tensorByteLength, type WireTensor } from './tensor-bytes.js';

export { MessageType, messageTypeName } from './message-types.js';

const NODE_ID_MAX_CHARS = 128;
const REASON_MAX_CHARS = 4096;
export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32;

// ---- handshake ----

export type NodeRole = 'coordinator' | 'worker' | 'client';

/** Client → server, first frame on a link. */
export interface HelloPayload {
  readonly protocolVersions: readonly number[];
  readonly nodeId: string;
  readonly role: NodeRole;
  /** 32 random bytes, hex. */
  readonly nonce: string;
  readonly software: string;
}

/** Server → client: its own nonce; the client must now prove it knows the secret. */
export interface ChallengePayload {
  readonly protocolVersion: number;
  readonly nodeId: string;
  readonly role: NodeRole;
  readonly nonce: string;
}

/** Client → server: HMAC proof over both nonces. */
export interface AuthPayload {
  readonly proof: string;
}

/** Server → client: the server's own proof, so the client knows it joined the right cluster. */
export interface WelcomePayload {
  readonly proof: string;
  readonly sessionId: string;
}

export type RefusalCode = 'bad-secret' | 'unsupported-version' | 'malformed' | 'timeout' | 'duplicate-node' | 'not-accepting';

export interface RefusedPayload {
  readonly code: RefusalCode;
  readonly reason: string;
}

// ---- membership ----

/** Worker → coordinator after the handshake: what this node can offer. */
export interface JoinPayload {
  readonly memoryBytes: number;
  /** Measured weight-streaming speed (bytes of weights read per second in a matrix-vector product). */
  readonly speedBytesPerSecond: number;
  readonly threads: number;
  readonly hasModelFile: boolean;
  /** SHA-256 of the worker's local model file, when it has one. */
  readonly modelSha256: string | null;
  readonly hostname: string;
  /** Where this worker accepts activations from the previous stage (pipeline links go worker → worker). */
  readonly peerHost: string;
  readonly peerPort: number;
}

export interface HeartbeatPayload {
  readonly seq: number;
  readonly sentAtMs: number;
}

export interface LeavePayload {
  readonly reason: string;
}

// ---- loading ----

export interface TensorRef {
  readonly name: string;
  /** ggml type number (see engine/gguf/types.ts). */
  readonly ggmlType: number;
  /** ggml dimensions, ne0 first. */
  readonly dims: readonly number[];
  readonly byteLength: number;
  readonly sha256: string;
}

/**
 * The model's shape on the wire. It mirrors engine/model/config.ts LlamaConfig on purpose (transport does not import
 * the engine); the worker builds a LlamaConfig from it, so tsc fails if the two drift apart.
 */
export interface ModelShapeWire {
  readonly arch: 'llama' | 'qwen2';
  readonly dim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly ffDim: number;
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly ropeDims: number;
  readonly ropeFreqBase: number;
  readonly ropeStyle: 'norm' | 'neox';
  readonly rmsEps: number;
  readonly tiedEmbeddings: boolean;
  readonly qkvBias: boolean;
}

/** The next stage of the pipeline, or null when this stage returns results to the coordinator. */
export interface NextHop {
  readonly nodeId: string;
  readonly host: string;
  readonly port: number;
}

/** Coordinator → worker: the layers this worker serves and the tensors it must hold. */
export interface AssignPayload {
  readonly model: ModelShapeWire;
  readonly hasRopeFreqs: boolean;
  readonly stageIndex: number;
  readonly stageCount: number;
  readonly nextHop: NextHop | null;
  readonly planId: string;
  readonly modelSha256: string;
  readonly firstLayer: number;
  /** Exclusive. */
  readonly lastLayer: number;
  readonly hasEmbedding: boolean;
  readonly hasHead: boolean;
  readonly contextTokens: number;
  readonly maxBatchSequences: number;
  /** 'local-file': read from the worker's own copy (hash must match); 'stream': expect TENSOR_CHUNKs. */
  readonly source: 'local-file' | 'stream';
  readonly tensors: readonly TensorRef[];
}

/** Streamed weights; binary = bytes [offset, offset + binary.length) of tensor `name`. END_OF_STREAM on the last chunk. */
export interface TensorChunkPayload {
  readonly name: string;
  readonly offset: number;
  readonly totalBytes: number;
}

export interface LoadProgressPayload {
  readonly planId: string;
  readonly loadedBytes: number;
  readonly totalBytes: number;
}

export interface LoadedPayload {
  readonly planId: string;
  readonly firstLayer: number;
  readonly lastLayer: number;
  readonly tensorCount: number;
  readonly loadMs: number;
}

// ---- inference ----

/** Tokens (i32, shape [n]) for the first stage, hidden states (f32, shape [n, dim]) for later ones. */
export interface ForwardInput extends WireTensor {
  readonly kind: 'tokens' | 'hidden';
}

/**
 * How the last stage picks the token for one logit row, so only the token (not 4 × vocab bytes of logits) travels
 * back. The sampler state is the coordinator's (Sampler.toWire()); the result returns the advanced PRNG state.
 */
export interface SamplingSpec {
  readonly sampler: readonly number[];
  /** The recent tokens the repetition penalty looks at (the sequence's last repeatLastN). */
  readonly recent: readonly number[];
  readonly topLogprobs: number;
}

/** Run one batch through this worker's layers. binary = the input tensor. */
export interface ForwardPayload {
  /** One per logit row: sample on the last stage (then RESULT carries tokens), or null to return raw logits. */
  readonly sampling: readonly SamplingSpec[] | null;
  readonly batchId: number;
  /** Per row of the input: the sequence (KV cache slot) and the position within it. */
  readonly seqIds: readonly number[];
  readonly positions: readonly number[];
  readonly input: ForwardInput;
  /** Rows whose logits the last stage must return (e.g. only the final token of a prefill). */
  readonly logitRows: readonly number[];
}

export interface ForwardOutput extends WireTensor {
  readonly kind: 'hidden' | 'logits' | 'tokens';
}

export interface SampledTokens {
  /** The sampler's PRNG state after each row's draw. */
  readonly rngStates: readonly number[];
  /** Top log-probabilities per row (empty arrays when not asked). */
  readonly logprobs: ReadonlyArray<ReadonlyArray<{ readonly id: number; readonly logprob: number }>>;
}

/** binary = the output tensor. */
export interface ResultPayload {
  /** Set when the output is sampled tokens (kind 'tokens'). */
  readonly sampled: SampledTokens | null;
  readonly batchId: number;
  readonly output: ForwardOutput;
  readonly computeMs: number;
}

/** Drop KV cache entries of `seqId` at positions ≥ fromPosition (0 frees the whole sequence). */
export interface TruncatePayload {
  readonly seqId: number;
  readonly fromPosition: number;
}

// ---- control ----

export interface ErrorPayload {
  readonly code: string;
  readonly message: string;
  /** The batch that failed, when the error belongs to one. */
  readonly batchId: number | null;
}

export interface ShutdownPayload {
  readonly reason: string;
  readonly graceMs: number;
}

export interface MessagePayloads {
  [MessageType.HELLO]: HelloPayload;
  [MessageType.CHALLENGE]: ChallengePayload;
  [MessageType.AUTH]: AuthPayload;
  [MessageType.WELCOME]: WelcomePayload;
  [MessageType.REFUSED]: RefusedPayload;
  [MessageType.JOIN]: JoinPayload;
  [MessageType.HEARTBEAT]: HeartbeatPayload;
  [MessageType.LEAVE]: LeavePayload;
  [MessageType.ASSIGN]: AssignPayload;
  [MessageType.TENSOR_CHUNK]: TensorChunkPayload;
  [MessageType.LOAD_PROGRESS]: LoadProgressPayload;
  [MessageType.LOADED]: LoadedPayload;
  [MessageType.FORWARD]: ForwardPayload;
  [MessageType.RESULT]: ResultPayload;
  [MessageType.TRUNCATE]: TruncatePayload;
  [MessageType.ERROR]: ErrorPayload;
  [MessageType.SHUTDOWN]: ShutdownPayload;
}

/** A decoded message; narrow on `type` to get the payload type. */
export type Message<T extends MessageType = MessageType> = T extends MessageType
  ? {
      readonly type: T;
      readonly payload: MessagePayloads[T];
      /** Raw binary part (tensor bytes); empty when the message carries none. */
      readonly binary: Buffer;
      readonly streamId: number;
      readonly flags: number;
    }
  : never;

// ---- runtime shapes ----

const nodeId = text(NODE_ID_MAX_CHARS);
const nodeRole = oneOf('coordinator', 'worker', 'client');
const reason = text(REASON_MAX_CHARS);
const sha256 = hex(32);
const wireDType = oneOf(...WIRE_DTYPES);
const dims = arrayOf(count, 8);

const SHAPES: { readonly [T in MessageType]: Check<MessagePayloads[T]> } = {
  [MessageType.HELLO]: object<HelloPayload>({
    protocolVersions: arrayOf(count, 16),
    nodeId,
    role: nodeRole,
    nonce: hex(NONCE_BYTES),
    software: str,
  }),
  [MessageType.CHALLENGE]: object<ChallengePayload>({ protocolVersion: count, nodeId, role: nodeRole, nonce: hex(NONCE_BYTES) }),
  [MessageType.AUTH]: object<AuthPayload>({ proof: hex(PROOF_BYTES) }),
  [MessageType.WELCOME]: object<WelcomePayload>({ proof: hex(PROOF_BYTES), sessionId: text(64) }),
  [MessageType.REFUSED]: object<RefusedPayload>({
    code: oneOf('bad-secret', 'unsupported-version', 'malformed', 'timeout', 'duplicate-node', 'not-accepting'),
    reason,
  }),
  [MessageType.JOIN]: object<JoinPayload>({
    memoryBytes: count,
    speedBytesPerSecond: num,
    threads: count,
    hasModelFile: bool,
    modelSha256: nullable(sha256),
    hostname: str,
    peerHost: text(256),
    peerPort: count,
  }),
  [MessageType.HEARTBEAT]: object<HeartbeatPayload>({ seq: count, sentAtMs: num }),
  [MessageType.LEAVE]: object<LeavePayload>({ reason }),
  [MessageType.ASSIGN]: object<AssignPayload>({
    model: object<ModelShapeWire>({
      arch: oneOf('llama', 'qwen2'), dim: count, nLayers: count, nHeads: count, nKvHeads: count, headDim: count, ffDim: count,
      vocabSize: count, contextLength: count, ropeDims: count, ropeFreqBase: num, ropeStyle: oneOf('norm', 'neox'), rmsEps: num,
      tiedEmbeddings: bool, qkvBias: bool,
    }),
    hasRopeFreqs: bool,
    stageIndex: count,
    stageCount: count,
    nextHop: nullable(object<NextHop>({ nodeId, host: text(256), port: count })),
    planId: text(64),
    modelSha256: sha256,
    firstLayer: count,
    lastLayer: count,
    hasEmbedding: bool,
    hasHead: bool,
    contextTokens: count,
    maxBatchSequences: count,
    source: oneOf('local-file', 'stream'),
    tensors: arrayOf(object<TensorRef>({ name: text(256), ggmlType: count, dims, byteLength: count, sha256 }), 100_000),
  }),
  [MessageType.TENSOR_CHUNK]: object<TensorChunkPayload>({ name: text(256), offset: count, totalBytes: count }),
  [MessageType.LOAD_PROGRESS]: object<LoadProgressPayload>({ planId: text(64), loadedBytes: count, totalBytes: count }),
  [MessageType.LOADED]: object<LoadedPayload>({ planId: text(64), firstLayer: count, lastLayer: count, tensorCount: count, loadMs: num }),
  [MessageType.FORWARD]: object<ForwardPayload>({
    sampling: optional(arrayOf(object<SamplingSpec>({ sampler: arrayOf(num, 8), recent: arrayOf(count, 4096), topLogprobs: count }), 1_000_000)),
    batchId: count,
    seqIds: arrayOf(count),
    positions: arrayOf(count),
    input: object<ForwardInput>({ kind: oneOf('tokens', 'hidden'), dtype: wireDType, shape: dims }),
    logitRows: arrayOf(count),
  }),
  [MessageType.RESULT]: object<ResultPayload>({
    sampled: optional(object<SampledTokens>({
      rngStates: arrayOf(count),
      logprobs: arrayOf(arrayOf(object<{ id: number; logprob: number }>({ id: count, logprob: num }), 100)),
    })),
    batchId: count,
    output: object<ForwardOutput>({ kind: oneOf('hidden', 'logits', 'tokens'), dtype: wireDType, shape: dims }),
    computeMs: num,
  }),
  [MessageType.TRUNCATE]: object<TruncatePayload>({ seqId: count, fromPosition: count }),
  [MessageType.ERROR]: object<ErrorPayload>({ code: text(64), message: str, batchId: nullable(count) }),
  [MessageType.SHUTDOWN]: object<ShutdownPayload>({ reason, graceMs: count }),
};

/** Cross-field rules, including that the binary part has exactly the bytes the payload describes. */
function checkBinary(type: MessageType, payload: MessagePayloads[MessageType], binary: Uint8Array): void {
  const name = messageTypeName(type);
  const bad = (msg: string): never => {
    throw new ProtocolError('bad-payload', `${name}: ${msg}`);
  };
  switch (type) {
    case MessageType.FORWARD: {
      const p = payload as ForwardPayload;
      const rows = p.input.shape[0] ?? 0;
      if (p.seqIds.length !== rows || p.positions.length !== rows) bad(`${rows} input rows but ${p.seqIds.length} seqIds and ${p.positions.length} positions`);
      if (p.input.kind === 'tokens' && (p.input.dtype !== 'i32' || p.input.shape.length !== 1)) bad('tokens must be i32 with shape [n]');
      if (p.input.kind === 'hidden' && p.input.shape.length !== 2) bad('hidden states must have shape [n, dim]');
      for (const r of p.logitRows) if (r >= rows) bad(`logit row ${r} is outside the ${rows} input rows`);
      if (p.sampling && p.sampling.length !== p.logitRows.length) bad(`${p.sampling.length} sampling specs for ${p.logitRows.length} logit rows`);
      const want = tensorByteLength(p.input);
      if (binary.byteLength !== want) bad(`input ${p.input.dtype}[${p.input.shape.join('×')}] needs ${want} bytes, frame carries ${binary.byteLength}`);
      return;
    }
    case MessageType.RESULT: {
      const p = payload as ResultPayload;
      const want = tensorByteLength(p.output);
      if (binary.byteLength !== want) bad(`output ${p.output.dtype}[${p.output.shape.join('×')}] needs ${want} bytes, frame carries ${binary.byteLength}`);
      return;
    }
    case MessageType.TENSOR_CHUNK: {
      const p = payload as TensorChunkPayload;
      if (p.offset + binary.byteLength > p.totalBytes) bad(`chunk of ${p.name} [${p.offset}, ${p.offset + binary.byteLength}) runs past its ${p.totalBytes} bytes`);
      return;
    }
    case MessageType.ASSIGN:
    case MessageType.LOADED: {
      const p = payload as AssignPayload | LoadedPayload;
      if (p.lastLayer < p.firstLayer) bad(`layer range [${p.firstLayer}, ${p.lastLayer}) is reversed`);
      break;
    }
    default:
      break;
  }
  if (binary.byteLength !== 0) bad(`carries ${binary.byteLength} unexpected binary bytes`);
}

export interface EncodeOptions {
  readonly binary?: Uint8Array;
  readonly streamId?: number;
  readonly flags?: number;
}

/**
 * Build the frame for a message. The payload is checked against the same rules the receiver applies, so a bug
 * shows up at the sender with a stack trace instead of as a peer's refusal.
 */
export function encodeMessage<T extends MessageType>(type: T, payload: MessagePayloads[T], options: EncodeOptions = {}): FrameToEncode {
  const checked = SHAPES[type](payload, messageTypeName(type));
  checkBinary(type, checked, options.binary ?? new Uint8Array(0));
  return { type, json: payload, binary: options.binary, streamId: options.streamId, flags: options.flags };
}

/** Check and type a received frame. Throws ProtocolError('unknown-type' | 'bad-payload'). */
export function decodeMessage(frame: Frame): Message {
  const type = frame.type;
  if (!isMessageType(type)) throw new ProtocolError('unknown-type', `unknown message ${messageTypeName(type)}`);
  const payload = SHAPES[type](frame.json, messageTypeName(type));
  checkBinary(type, payload, frame.binary);
  return { type, payload, binary: frame.binary, streamId: frame.streamId, flags: frame.flags } as Message;
}

/** Narrowing helper: `if (isMessage(m, MessageType.FORWARD)) m.payload.seqIds…` */
export function isMessage<T extends MessageType>(m: Message, type: T): m is Message<T> {
  return m.type === type;
}
