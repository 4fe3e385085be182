/** JSON of a final error: name, message, code and the selected fields. @internal */
export function serializeError(error: unknown, fields: readonly string[]): string {
  const source = (error !== null && typeof error === 'object' ? error : {}) as Record<string, unknown>;
  const text = (value: unknown): string => {
    try {
      return String(value);
    } catch {
      return ''; // an object without a prototype has no String form
    }
  };
  const data: Record<string, unknown> = {
    name: typeof source.name === 'string' ? source.name : 'Error',
    message: typeof source.message === 'string' ? source.message : text(error),
  };
  if (source.code !== undefined) data.code = typeof source.code === 'string' || typeof source.code === 'number' ? source.code : text(source.code);
  const base = JSON.stringify(data);
  for (const field of fields) if (source[field] !== undefined) data[field] = source[field];
  try {
    return JSON.stringify(data);
  } catch {
    return base; // a field JSON cannot hold is dropped, the error is still stored
  }
}

/** The replayed form of a stored final error. @internal */
export function reviveError(json: string): Error {
  const { name, message, ...fields } = JSON.parse(json) as Record<string, unknown>;
  const error = new Error(typeof message === 'string' ? message : '');
  Object.defineProperty(error, 'name', { value: typeof name === 'string' ? name : 'Error', writable: true, configurable: true });
  return Object.assign(error, fields);
}
