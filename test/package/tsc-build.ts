/**
 * Compiles several TypeScript projects in one `tsc -b` process and hands back each project's output
 * (its errors, and its file list where the project sets `listFiles`) as soon as the build has moved
 * past it. Build mode keeps every source file it parsed for the projects after it (cached per path
 * and module format), so aws-cdk-lib's 3,300 declaration files and @types/node are parsed once for
 * all the projects instead of once per `tsc -p`: about half the CPU time of separate compilers.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

/** Announces a project; `--verbose` prints it before the project's errors. */
const BUILDING = /^.* - Building project '(.+)'\.\.\.$/;
/** The other lines `--verbose --force` prints: the build order, and a project about to be rebuilt. */
const STATUS = [/^.* - Projects in this build: ?$/, /^ {4}\* \S/, /^.* - Project '[^']+' is being forcibly rebuilt$/, /^$/];

interface Deferred {
  readonly promise: Promise<string>;
  settle(output: string): void;
}

function deferred(): Deferred {
  let settle!: (output: string) => void;
  const promise = new Promise<string>((resolve) => {
    settle = resolve;
  });
  return { promise, settle };
}

/**
 * Builds `tsconfigs` (paths relative to `cwd`) in this order, every time (`--force`: their
 * .tsbuildinfo files are not trusted). Each promise settles with what tsc printed for that project,
 * '' when it compiled cleanly. Whatever cannot be told apart by project (a crash, a line printed
 * before the first project) goes to every project not yet settled, so that it fails them all.
 */
export function tscBuild(tsc: string, cwd: string, tsconfigs: readonly string[]): ReadonlyMap<string, Promise<string>> {
  const outputs = new Map(tsconfigs.map((tsconfig) => [resolve(cwd, tsconfig), deferred()]));
  const unattributed: string[] = [];
  let current: { readonly output: Deferred | undefined; readonly lines: string[] } | undefined;
  let printed = false;
  const settleCurrent = () => current?.output?.settle([...unattributed, ...current.lines].join('\n'));
  const take = (raw: string) => {
    const line = raw.replace(/\r$/, '');
    const building = BUILDING.exec(line);
    if (building) {
      // The project before this one is done.
      settleCurrent();
      const output = outputs.get(building[1]!);
      if (output === undefined) unattributed.push(line);
      current = { output, lines: [] };
    } else if (!STATUS.some((status) => status.test(line))) {
      printed = true;
      (current?.lines ?? unattributed).push(line);
    }
  };
  const child = spawn(process.execPath, [tsc, '-b', '--verbose', '--force', ...tsconfigs], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    lines.forEach(take);
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const end = (failure: string | undefined) => {
    if (pending !== '') take(pending);
    if (failure !== undefined) unattributed.push(failure);
    settleCurrent();
    // A project tsc never announced was not compiled; settling twice changes nothing.
    for (const output of outputs.values()) output.settle([...unattributed, 'tsc -b did not build this project'].join('\n'));
  };
  child.on('error', (error) => end(`tsc -b did not start: ${error.message}`));
  child.on('close', (code, signal) => {
    // A non-zero exit is explained by the errors printed (already in their projects' output); without any, or with a crash on stderr, it fails the rest.
    const unexplained = stderr !== '' || (code !== 0 && !printed);
    end(unexplained ? `tsc -b exited with ${code ?? signal}${stderr === '' ? '' : `:\n${stderr}`}` : undefined);
  });
  return new Map([...outputs].map(([tsconfig, output]) => [tsconfig, output.promise]));
}
