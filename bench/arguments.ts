/**
 * The command line of `npm run bench`, read before any other bench module runs (bench/run.ts
 * imports it first): the run takes no options, so any argument prints the usage and exits before
 * anything is compiled or started, and bench/results.json is left as it is.
 */
const USAGE = `npm run bench: lambda-idempotency and @aws-lambda-powertools/idempotency side by side (about 1½–3 minutes).
Needs Java 17+ (DynamoDB Local) and redis-server on PATH; repeats the Node-dependent sections on Node 24,
installed from the npm registry into \${BENCH_NODE24_PREFIX:-~/.cache/node24} on first use.
Prints one table and overwrites bench/results.json, the run docs/performance.md reports. Takes no options.`;

const args = process.argv.slice(2);
if (args.length > 0) {
  const help = args.every((arg) => arg === '--help' || arg === '-h');
  (help ? process.stdout : process.stderr).write(`${help ? '' : `unknown argument: ${args.join(' ')}\n`}${USAGE}\n`);
  process.exit(help ? 0 : 2);
}
