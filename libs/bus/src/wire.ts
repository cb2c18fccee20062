import type { Msg } from '@nats-io/nats-core';
import { ERROR_CATALOG, isErrorCode, QubesError, type ErrorBody } from '@qubes-bus/contracts';
import type { z } from 'zod';

/** NATS services convention (ADR-32): the error status and description travel in headers. */
export const SERVICE_ERROR_CODE_HEADER = 'Nats-Service-Error-Code';
export const SERVICE_ERROR_HEADER = 'Nats-Service-Error';

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * A Buffer (a Uint8Array) rather than TextEncoder's output: Node makes small Buffers from a
 * shared slab, where TextEncoder allocates a new ArrayBuffer for each, a third of the cost
 * of a small request's encoding (and garbage to collect).
 */
export function encodeJson(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value ?? null));
}

/** Parses a request body: empty means `{}`; anything but UTF-8 JSON is a BAD_REQUEST. */
export function decodeRequestBody(data: Uint8Array): unknown {
  if (data.length === 0) return {};
  try {
    return JSON.parse(decoder.decode(data));
  } catch {
    throw new QubesError('BAD_REQUEST', 'the request body is not JSON', { details: { field: '(body)' } });
  }
}

/** A zod failure as a BAD_REQUEST naming the first offending field, e.g. `payload.memory`. */
export function badRequestFromIssues(issues: readonly z.core.$ZodIssue[]): QubesError {
  const first = issues[0];
  const keys = first?.code === 'unrecognized_keys' ? first.keys : [];
  const pathParts = [...(first?.path ?? []).map(String), ...keys.slice(0, 1)];
  const field = pathParts.length === 0 ? '(body)' : pathParts.join('.');
  const reason = first?.code === 'unrecognized_keys' ? 'is not a known field' : (first?.message ?? 'is invalid');
  return new QubesError('BAD_REQUEST', `${field}: ${reason}`, {
    details: { field, issues: issues.map((i) => ({ path: i.path.map(String), message: i.message, code: i.code })) },
  });
}

/** Header values are single lines; keep descriptions readable and bounded. */
export function headerSafe(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 512);
}

/** Turns an error reply back into the QubesError the service raised, or undefined for a success. */
export function errorFromReply(msg: Msg): QubesError | undefined {
  const status = msg.headers?.get(SERVICE_ERROR_CODE_HEADER);
  if (status === undefined || status === '') return undefined;
  const description = msg.headers?.get(SERVICE_ERROR_HEADER) ?? 'error';
  let body: unknown = {};
  try {
    body = decodeRequestBody(msg.data);
  } catch {
    // an error reply from a foreign service: keep the header's description
  }
  return errorFromBody(body, description, Number(status));
}

/** The QubesError an error body (`{ code, message, details }`) describes, else a generic one. */
export function errorFromBody(untrustedBody: unknown, description: string, status: number): QubesError {
  const body = (typeof untrustedBody === 'object' && untrustedBody !== null ? untrustedBody : {}) as Partial<ErrorBody>;
  if (isErrorCode(body.code)) {
    return new QubesError(body.code, typeof body.message === 'string' ? body.message : description, {
      ...(body.details !== undefined && typeof body.details === 'object' ? { details: body.details } : {}),
      remote: true,
    });
  }
  const code = status < 500 ? 'BAD_REQUEST' : 'INTERNAL';
  return new QubesError(code, description, { details: { status }, remote: true });
}

export function statusOf(err: QubesError): number {
  return ERROR_CATALOG[err.code].status;
}
