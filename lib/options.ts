/** Throws a `TypeError` naming the first key of `options` that is not in `allowed`. @internal */
export function assertOptions(where: string, options: unknown, allowed: readonly string[]): void {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${where}: options must be an object.`);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new TypeError(`${where}: unknown option \`${key}\`. Known options: ${allowed.join(', ')}.`);
    }
  }
}
