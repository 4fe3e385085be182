/** JSON of a final error: name, message, code and the selected fields. @internal */
export function serializeError(error: unknown, fields: readonly string[]): string {
  const object = (error !== null && typeof error === 'object' ? error : {}) as Record<string, unknown>;
  // A getter or proxy trap that throws reads as absent: the call's outcome must still be stored.
  const read = (field: string): unknown => {
    try {
      return object[field];
    } catch {
      return undefined;
    }
  };
  const text = (value: unknown): string => {
    try {
      return String(value);
    } catch {
      return ''; // an object without a prototype has no String form
    }
  };
  const [name, message, code] = [read('name'), read('message'), read('code')];
  const data: Record<string, unknown> = {
    name: typeof name === 'string' ? name : 'Error',
    message: typeof message === 'string' ? message : text(error),
  };
  if (code !== undefined) data.code = typeof code === 'string' || typeof code === 'number' ? code : text(code);
  const base = JSON.stringify(data);
  for (const field of fields) {
    const value = read(field);
    if (value !== undefined) data[field] = value;
  }
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
