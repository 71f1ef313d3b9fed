import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * How long one skopeo command may run. Below vitest's 180 s test timeout, so a hung transfer
 * fails as a SkopeoError carrying skopeo's stderr instead of a bare test timeout; a 105 MB image
 * takes about 15 s each way on a loaded two-core machine.
 */
export const SKOPEO_TIMEOUT_MS = 150_000;

/** skopeo's own output is small (JSON of one manifest or config, both capped at 4 MiB). */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

interface PrivateConfig { policy: string; registriesD: string; registriesConf: string }
let config: PrivateConfig | undefined;

/**
 * A private configuration, so skopeo needs nothing from /etc/containers: a signature policy that
 * accepts anything, an empty registries.d (no signature storage) and an empty registries.conf
 * (no mirrors or short-name aliases; every reference here is fully qualified). Made on first use,
 * removed at exit.
 */
function privateConfig(): PrivateConfig {
  if (config) return config;
  const dir = mkdtempSync(join(tmpdir(), 'krill-skopeo-'));
  // Removed when this process ends (a benchmark's too, which the suites' cleanup does not see).
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const policy = join(dir, 'policy.json');
  writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const registriesD = join(dir, 'registries.d');
  mkdirSync(registriesD);
  const registriesConf = join(dir, 'registries.conf');
  writeFileSync(registriesConf, '');
  config = { policy, registriesD, registriesConf };
  return config;
}

/** A failed skopeo run: its arguments (credentials masked), exit code and the whole stderr. */
export class SkopeoError extends Error {
  readonly code = 'ERR_SKOPEO_FAILED';
  constructor(readonly args: string[], readonly stderr: string, readonly exitCode: number | null, readonly timedOut: boolean) {
    super(`skopeo ${args.join(' ')} ${timedOut ? 'timed out' : `failed (exit ${exitCode})`}: ${stderr.trim()}`);
  }
}

/** Masks the value after every credentials flag, so errors and logs never carry a password. */
function masked(args: string[]): string[] {
  return args.map((a, i) => (/^--(src-|dest-)?(creds|password)$/.test(args[i - 1] ?? '') ? '***' : a));
}

export interface SkopeoOptions {
  timeoutMs?: number;
  /** Global flags placed before the command, e.g. `['--override-arch', 'arm64']`. */
  globalArgs?: string[];
}

/** Runs skopeo with the private configuration; resolves with stdout as bytes. */
export function skopeoBytes(args: string[], o: SkopeoOptions = {}): Promise<Buffer> {
  const c = privateConfig();
  const timeoutMs = o.timeoutMs ?? SKOPEO_TIMEOUT_MS;
  const full = ['--policy', c.policy, '--registries.d', c.registriesD, '--command-timeout', `${Math.ceil(timeoutMs / 1000)}s`, ...(o.globalArgs ?? []), ...args];
  const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: c.registriesConf };
  return new Promise((resolve, reject) => {
    // The kill is a backstop a few seconds after skopeo's own --command-timeout.
    execFile('skopeo', full, { env, encoding: 'buffer', timeout: timeoutMs + 5_000, maxBuffer: MAX_OUTPUT_BYTES }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const timedOut = err.killed === true || /context deadline exceeded/.test(stderr.toString());
      reject(new SkopeoError(masked(args), stderr.toString(), typeof err.code === 'number' ? err.code : null, timedOut));
    });
  });
}

/** Runs skopeo with the private configuration; resolves with stdout as text. */
export async function skopeo(args: string[], o: SkopeoOptions = {}): Promise<string> {
  return (await skopeoBytes(args, o)).toString('utf8');
}

export interface CopyOptions extends SkopeoOptions {
  /** Copy an index with every platform's image (`--all`), not just this machine's platform. */
  all?: boolean;
  /** `user:password` for the source registry. */
  srcCreds?: string;
  /** `user:password` for the destination registry. */
  destCreds?: string;
}

/**
 * `skopeo copy` between `oci:<dir>:<tag>` and `docker://host:port/repo:tag` references: plain HTTP
 * (TLS off) for registries, no retries (a failure must show, not be papered over), and digests
 * preserved (skopeo refuses rather than recompress a layer).
 */
export function copy(src: string, dest: string, o: CopyOptions = {}): Promise<string> {
  return skopeo([
    'copy', '--retry-times', '0', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false',
    ...(o.all ? ['--all'] : []),
    ...(o.srcCreds ? ['--src-creds', o.srcCreds] : []),
    ...(o.destCreds ? ['--dest-creds', o.destCreds] : []),
    src, dest,
  ], o);
}

export interface InspectOptions extends SkopeoOptions {
  /** `user:password` for the registry. */
  creds?: string;
}

function inspectArgs(ref: string, extra: string[], o: InspectOptions): string[] {
  return ['inspect', '--retry-times', '0', ...(ref.startsWith('docker://') ? ['--tls-verify=false'] : []), ...(o.creds ? ['--creds', o.creds] : []), ...extra, ref];
}

/** `skopeo inspect` of a reference (or `--config`: the image's config), parsed. */
export async function inspect(ref: string, mode: 'image' | 'raw' | 'config' = 'image', o: InspectOptions = {}): Promise<Record<string, unknown>> {
  const extra = mode === 'raw' ? ['--raw'] : mode === 'config' ? ['--config'] : [];
  return JSON.parse(await skopeo(inspectArgs(ref, extra, o), o)) as Record<string, unknown>;
}

/**
 * The exact bytes of the manifest (or the config) a reference names, as the registry serves
 * them (`skopeo inspect --raw`, which adds nothing), for byte-for-byte comparison.
 */
export function inspectRaw(ref: string, what: 'manifest' | 'config' = 'manifest', o: InspectOptions = {}): Promise<Buffer> {
  return skopeoBytes(inspectArgs(ref, what === 'config' ? ['--config', '--raw'] : ['--raw'], o), o);
}
