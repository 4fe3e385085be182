/**
 * A command line as a POSIX shell reads it back word for word: each word as it is when it holds
 * only characters no shell treats specially, else in single quotes (a `'` inside as `'\''`). Error
 * messages name commands with it, so that a value with a quote or a space is copied whole. @internal
 */
export const shellCommand = (words: readonly string[]): string =>
  words.map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`)).join(' ');
