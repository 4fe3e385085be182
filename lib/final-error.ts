import { isAnyError } from './errors.js';

/** The members always stored of a final error; a field of `errorFields` by one of these names is stored as these are. */
const BASE_MEMBERS = new Set(['name', 'message', 'code']);

/** An object's member, or `undefined` when a getter or proxy trap throws: the call's outcome must still be stored. */
const read = (object: object, member: string): unknown => {
  try {
    return (object as Record<string, unknown>)[member];
  } catch {
    return undefined;
  }
};

/** A value's String form; an object without a prototype has none. */
const text = (value: unknown): string => {
  try {
    return String(value);
  } catch {
    return '';
  }
};

/**
 * A `JSON.stringify` replacer that stores an error inside a field (a `cause`, AggregateError's
 * `errors`) as its name, message, code, cause, errors and own fields, rather than as the `{}` of
 * its enumerable members alone. One error gives one object each time, so an error whose cause
 * leads back to it stays a cycle, which JSON refuses. The error is read from its holder: JSON calls
 * an error's `toJSON` (one for a logger, as AxiosError has, with the stack) before the replacer sees it.
 */
function nestedErrors(): (this: unknown, key: string, value: unknown) => unknown {
  const stored = new WeakMap<Error, Record<string, unknown>>();
  return function (this: unknown, key, written) {
    const value = isAnyError(written) || this === null || typeof this !== 'object' ? written : read(this, key);
    if (!isAnyError(value)) return written;
    let members = stored.get(value);
    if (members === undefined) {
      members = {};
      for (const member of ['name', 'message', 'code', ...Object.keys(value), 'cause', 'errors']) {
        const item = member === 'stack' ? undefined : read(value, member);
        if (item !== undefined) members[member] = item;
      }
      stored.set(value, members);
    }
    return members;
  };
}

/** JSON of a final error: name, message, code and the selected fields. @internal */
export function serializeError(error: unknown, fields: readonly string[]): string {
  const object = error !== null && typeof error === 'object' ? error : {};
  const [name, message, code] = [read(object, 'name'), read(object, 'message'), read(object, 'code')];
  const data: Record<string, unknown> = {
    name: typeof name === 'string' ? name : 'Error',
    // A thrown value that is no object (a string) is its own message; an object's message is its
    // `message` alone: one without (`{ statusCode: 404 }`) has none, never its text "[object Object]".
    message: typeof message === 'string' ? message : object !== error ? text(error) : message === undefined || message === null ? '' : text(message),
  };
  // A code JSON holds as it is (`null` too: an API error's `"code": null`) is stored as it is; any other as its text.
  if (code !== undefined) data.code = code === null || typeof code === 'string' || typeof code === 'number' || typeof code === 'boolean' ? code : text(code);
  let json = JSON.stringify(data);
  for (const field of new Set(fields)) {
    const value = BASE_MEMBERS.has(field) ? undefined : read(object, field);
    if (value === undefined) continue;
    let member: string | undefined;
    try {
      member = JSON.stringify(value, nestedErrors());
    } catch {
      continue; // a field JSON cannot hold (a BigInt, a cycle) is dropped alone: the others are still stored
    }
    if (member !== undefined) json = `${json.slice(0, -1)},${JSON.stringify(field)}:${member}}`;
  }
  return json;
}

/** The errors {@link reviveError} made: a batch's log tells a stored final error from one the call itself met. */
const revived = new WeakSet<object>();

/** Whether `error` is a stored final error, replayed (never throws). @internal */
export const isStoredError = (error: unknown): boolean => typeof error === 'object' && error !== null && revived.has(error);

/**
 * The replayed form of a stored final error: an `Error` with the stored name, message and code, and
 * those of its stored fields that `fields` (the call's `errorFields`) still lists, as its own. A
 * field removed from `errorFields` never reaches a duplicate, also from a record stored before. @internal
 */
export function reviveError(json: string, fields: readonly string[]): Error {
  const { name, message, ...stored } = JSON.parse(json) as Record<string, unknown>;
  const error = new Error(typeof message === 'string' ? message : '');
  Object.defineProperty(error, 'name', { value: typeof name === 'string' ? name : 'Error', writable: true, configurable: true });
  const listed = new Set(fields);
  // Defined, not assigned: a member named `__proto__` is a field, never the error's prototype.
  for (const [field, value] of Object.entries(stored)) {
    if (BASE_MEMBERS.has(field) || listed.has(field)) Object.defineProperty(error, field, { value, writable: true, enumerable: true, configurable: true });
  }
  revived.add(error);
  return error;
}
