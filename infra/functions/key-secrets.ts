/**
 * The secrets that sign idempotency keys, read from Secrets Manager through the AWS Parameters and
 * Secrets Lambda Extension (a layer the stack adds): a local HTTP call, cached by the extension,
 * with no SDK client in the bundle.
 */
import type { SigningSecret } from '../../lib/index.js';

/**
 * The current secret and, after a rotation, the previous one: keys issued just before the rotation
 * stay valid until the next one.
 */
export async function readKeySecrets(secretId: string, env: NodeJS.ProcessEnv = process.env): Promise<SigningSecret[]> {
  const port = env.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT ?? '2773';
  const read = async (stage: 'AWSCURRENT' | 'AWSPREVIOUS'): Promise<string | undefined> => {
    const url = `http://localhost:${port}/secretsmanager/get?secretId=${encodeURIComponent(secretId)}&versionStage=${stage}`;
    const response = await fetch(url, { headers: { 'X-Aws-Parameters-Secrets-Token': env.AWS_SESSION_TOKEN ?? '' } });
    if (!response.ok) {
      // A secret never rotated has no previous version: the extension answers a 4xx. A 5xx is a failure
      // (throttled, unreachable): dropping the previous version then would refuse the keys it signed
      // for as long as this execution environment lives, while a thrown error is tried again.
      if (stage === 'AWSPREVIOUS' && response.status < 500) return undefined;
      throw new Error(`Reading the key-signing secret failed: ${response.status} ${await response.text()}`);
    }
    return ((await response.json()) as { SecretString?: string }).SecretString;
  };
  const [current, previous] = await Promise.all([read('AWSCURRENT'), read('AWSPREVIOUS')]);
  if (!current) throw new Error('The key-signing secret has no string value.');
  return previous && previous !== current ? [current, previous] : [current];
}
