import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface S3rverHandle {
  /** `http://127.0.0.1:<port>`: use with forcePathStyle (s3rver's vhost mode needs DNS names). */
  endpoint: string;
  bucket: string;
  /** s3rver's one built-in account. It checks the key id, but (3.7) not SigV4 signatures. */
  accessKeyId: string;
  secretAccessKey: string;
  /** s3rver's log lines so far (only with `log: true`), e.g. `Stored part 2 of <id> ...`. */
  readonly logs: readonly string[];
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

/**
 * Runs s3rver in the child: started on 127.0.0.1 and a free port, it prints its port as JSON and
 * exits when its standard input closes, so it never outlives the test process.
 */
const CHILD_SCRIPT = `
const S3rver = require(process.argv[1]);
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: process.argv[4] !== 'log', directory: process.argv[2],
  configureBuckets: [{ name: process.argv[3] }], vhostBuckets: false });
server.run().then((addr) => console.log(JSON.stringify({ port: addr.port })), (err) => { console.error(err); process.exit(1); });
process.stdin.on('end', () => server.close().finally(() => process.exit(0)));
process.stdin.resume();
`;

/** How long s3rver may take to start on a loaded two-core machine before the test gives up. */
const START_TIMEOUT_MS = 20_000;

/**
 * Starts s3rver (npm, a file-backed S3 imitation) in its own Node process on 127.0.0.1 and a
 * free port, storing in a new temporary directory, with one bucket created.
 *
 * Why a child process with `--openssl-legacy-provider`: s3rver 3.7.1 makes ListObjectsV2
 * continuation tokens with DES (`createCipheriv('des')`), which OpenSSL 3 (Node 17 and later)
 * refuses, so every truncated listing would fail with HTTP 500 InternalError. The legacy
 * provider brings DES back for s3rver alone, without touching the test process.
 */
export async function startS3rver(options: { bucket?: string; log?: boolean } = {}): Promise<S3rverHandle> {
  const bucket = options.bucket ?? 'krill-test';
  const logs: string[] = [];
  const modulePath = createRequire(import.meta.url).resolve('s3rver');
  const directory = await mkdtemp(join(tmpdir(), 'krill-s3rver-'));
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', CHILD_SCRIPT, modulePath, directory, bucket, options.log ? 'log' : 'quiet'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let port: number;
  try {
    port = await readPort(child, logs);
  } catch (err) {
    await stop(child);
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    logs,
    async close() {
      try {
        await stop(child);
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
    },
  };
}

function readPort(child: ChildProcess, logs: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3rver did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    let started = false;
    // The port line is JSON; everything else is s3rver's log, colour codes stripped.
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!started && line.startsWith('{"port":')) {
        started = true;
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
        return;
      }
      logs.push(line.replace(/\u001b\[[0-9;]*m/g, ''));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!started) reject(new Error(`s3rver exited with code ${code} before listening`));
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin?.end();
  // s3rver closes at once when idle; the kill is for a child stuck on an open connection.
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
