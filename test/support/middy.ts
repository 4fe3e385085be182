import * as core from '@middy/core';

/**
 * The major version of the middy the test runs on: jest runs the middy tests on middy 7 and again
 * on middy 6 (mapping `@middy/core` to `@middy/core-v6`). Told apart by a named export middy 7 added.
 */
export const middyMajor: 6 | 7 = 'middyValidateOptions' in core ? 7 : 6;

/**
 * A middleware whose `after` throws while `down` is true: a response logger that cannot reach its
 * sink, failing an invocation whose handler has returned. Set `down` to false for the retry.
 */
export function responseLogger(): { readonly middleware: core.MiddlewareObj; down: boolean } {
  const logger = {
    down: true,
    middleware: {
      after: () => {
        if (logger.down) throw new Error('response logger down');
      },
    },
  };
  return logger;
}
