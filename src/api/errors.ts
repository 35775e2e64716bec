/**
 * Errors in OpenAI's shape — `{error: {message, type, param, code}}` — so OpenAI clients surface our messages as
 * they would OpenAI's. Every failure, including fastify's own (bad JSON, schema violations, unknown routes), ends up
 * here, which is what keeps a bad request from ever reaching the cluster or crashing the process.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import type { Logger } from '../cluster/log.js';

export type OpenAiErrorType = 'invalid_request_error' | 'server_error';

export interface OpenAiErrorBody {
  readonly error: { readonly message: string; readonly type: OpenAiErrorType; readonly param: string | null; readonly code: string | null };
}

/** A failure we answer deliberately, with a status and a message meant for the API user. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  get type(): OpenAiErrorType {
    return this.status >= 500 ? 'server_error' : 'invalid_request_error';
  }

  toJSON(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Field-specific wording for schema failures where ajv's own ("must match a schema in anyOf") says too little. */
const FIELD_HINTS: Readonly<Record<string, string>> = {
  prompt: 'prompt must be a string, an array of token ids, or an array holding one string',
  stop: 'stop must be a string or an array of up to 16 non-empty strings',
};

interface AjvLikeError {
  readonly instancePath?: string;
  readonly keyword?: string;
  readonly message?: string;
  readonly params?: Readonly<Record<string, unknown>>;
}

/** Turn fastify's schema-validation error into one clear sentence naming the field. */
export function validationError(errors: readonly AjvLikeError[]): ApiError {
  const first = errors[0] ?? {};
  const path = (first.instancePath ?? '').split('/').filter(Boolean);
  const param = path[0] ?? null;
  if (param === null) {
    if (first.keyword === 'required') {
      const missing = String(first.params?.['missingProperty'] ?? '');
      return new ApiError(400, `missing required field '${missing}'`, missing, 'missing_required_parameter');
    }
    return new ApiError(400, 'the request body must be a JSON object (sent with Content-Type: application/json)', null, 'invalid_request_body');
  }
  const hint = FIELD_HINTS[param];
  if (hint) return new ApiError(400, hint, param, 'invalid_type');
  const where = path.join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
  return new ApiError(400, `${where} ${first.message ?? 'is invalid'}`, param, 'invalid_value');
}

/** fastify's own client errors (content-type parser and the like) keep their status, in our shape. */
const FASTIFY_CODES: Readonly<Record<string, string>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'request_too_large',
};

export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const fe = err as Partial<FastifyError> & { validation?: AjvLikeError[] };
  if (Array.isArray(fe.validation)) return validationError(fe.validation);
  if (err instanceof SyntaxError) return new ApiError(400, `the body is not valid JSON: ${err.message}`, null, 'invalid_json');
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) return new ApiError(status, fe.message ?? 'bad request', null, FASTIFY_CODES[fe.code ?? ''] ?? null);
  return new ApiError(500, 'internal server error', null, 'internal_error');
}

/** Install the error and not-found handlers on the root instance (they apply to every plugin registered after). */
export function installErrorHandlers(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((err, request, reply) => {
    const api = toApiError(err);
    if (api.status >= 500) logger.error(`${request.method} ${request.url}: ${(err as Error).stack ?? String(err)}`);
    return reply.status(api.status).send(api.toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    const api = new ApiError(404, `no route ${request.method} ${request.url}`, null, 'not_found');
    return reply.status(404).send(api.toJSON());
  });
}
