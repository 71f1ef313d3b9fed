import { parseArgs } from 'node:util';
import { credentials, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { channelOptions, cri, unary, unixTarget, type Image, type ImageFsInfoResponse } from '@krill/proto';
import { UsageError, type Command, type CommandIo } from '../command.js';

/** `krill node`'s CRI socket (node-daemon's criConfigSchema default). */
const DEFAULT_SOCKET = '/run/krill/cri.sock';
/**
 * The default bound of `imagefsinfo`, the check scripts make before pointing kubelet at a socket.
 * containerd answers ImageFsInfo in milliseconds; kubelet's own startup check waits up to its
 * 2-minute runtime-request-timeout, far too long for a probe that runs every few seconds.
 */
const IMAGEFSINFO_TIMEOUT_MS = 5_000;

const VERBS = ['pull', 'images', 'inspecti', 'rmi', 'imagefsinfo'] as const;
type Verb = (typeof VERBS)[number];

const HELP = `Usage: krill cri [--socket SOCK] [--timeout-ms N] <verb> [IMAGE]

Makes crictl's image calls on a CRI image-service socket (reference: cri-containerd.md §1).

Verbs:
  pull IMAGE      PullImage with the reference exactly as typed; prints the image id
  images [NAME]   ListImages (filter NAME, also applied here: containerd ignores it)
  inspecti IMAGE  ImageStatus, verbose; prints {status, info} as JSON
  rmi IMAGE       ImageStatus, then RemoveImage by id
  imagefsinfo     ImageFsInfo, the call kubelet makes to validate an image endpoint; exits 0
                  only when the socket answers within the timeout

Options:
  --socket SOCK   the CRI socket (default ${DEFAULT_SOCKET})
  --timeout-ms N  deadline of each call (default: none; ${IMAGEFSINFO_TIMEOUT_MS} for imagefsinfo)

A failed call prints its gRPC code and message and exits 1.
`;

/** `krill cri --socket SOCK pull|images|inspecti|rmi|imagefsinfo`: crictl's image calls (issue 5). */
export const criCommand: Command = {
  name: 'cri',
  summary: 'make crictl\'s image calls on a CRI socket',
  help: () => HELP,
  async run(args, io) {
    const o = parse(args);
    const api = cri();
    const client: Client = new api.ImageService(unixTarget(o.socket), credentials.createInsecure(), channelOptions);
    // Ctrl-C cancels a long pull; the call then fails with CANCELLED.
    const abort = new AbortController();
    void io.stopSignal.then(() => abort.abort());
    const call = <T>(method: string, request: object) => unary<T>(client, method, request, {
      signal: abort.signal,
      ...(o.timeoutMs !== undefined ? { deadline: Date.now() + o.timeoutMs } : {}),
    });
    try {
      return await VERB_RUNNERS[o.verb](call, o.image, io);
    } catch (err) {
      if (!isServiceError(err)) throw err;
      const name = status[err.code] ?? 'UNKNOWN';
      io.stderr.write(`krill cri ${o.verb}: ${name} (gRPC code ${err.code}) from ${unixTarget(o.socket)}: ${err.details || err.message}\n`);
      return 1;
    } finally {
      client.close();
    }
  },
};

type Call = <T>(method: string, request: object) => Promise<T>;
type Runner = (call: Call, image: string | undefined, io: CommandIo) => Promise<number>;

const VERB_RUNNERS: Record<Verb, Runner> = {
  async pull(call, image, io) {
    const t0 = performance.now();
    const { imageRef } = await call<{ imageRef: string }>('PullImage', { image: { image: image!, annotations: {} } });
    io.stdout.write(`Image is up to date for ${imageRef} (${((performance.now() - t0) / 1000).toFixed(2)} s)\n`);
    return 0;
  },
  async images(call, name, io) {
    const { images } = await call<{ images: Image[] }>('ListImages', name ? { filter: { image: { image: name } } } : {});
    io.stdout.write(imageTable(name ? images.filter((i) => matches(i, name)) : images));
    return 0;
  },
  async inspecti(call, image, io) {
    const r = await call<{ image: Image | null; info: Record<string, string> }>('ImageStatus', { image: { image: image! }, verbose: true });
    if (!r.image) return noSuchImage(io, 'inspecti', image!);
    // crictl prints each info value parsed when it is JSON (containerd's one key, "info", is).
    const info = Object.fromEntries(Object.entries(r.info ?? {}).map(([k, v]) => [k, parseJson(v)]));
    io.stdout.write(`${JSON.stringify({ status: r.image, info }, null, 2)}\n`);
    return 0;
  },
  async rmi(call, image, io) {
    const { image: found } = await call<{ image: Image | null }>('ImageStatus', { image: { image: image! }, verbose: false });
    if (!found) return noSuchImage(io, 'rmi', image!);
    await call('RemoveImage', { image: { image: found.id } });
    for (const name of found.repoTags.length > 0 ? found.repoTags : [found.id]) io.stdout.write(`Deleted: ${name}\n`);
    return 0;
  },
  async imagefsinfo(call, _image, io) {
    const r = await call<ImageFsInfoResponse>('ImageFsInfo', {});
    io.stdout.write(`${JSON.stringify({ status: r }, null, 2)}\n`);
    return 0;
  },
};

interface Options {
  socket: string;
  timeoutMs?: number;
  verb: Verb;
  image?: string;
}

function parse(args: string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { socket: { type: 'string' }, 'timeout-ms': { type: 'string' } }, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [verb, image, ...extra] = positionals;
  if (!verb) throw new UsageError(`a verb is required: ${VERBS.join(', ')}`);
  if (!(VERBS as readonly string[]).includes(verb)) throw new UsageError(`unknown verb ${JSON.stringify(verb)}; expected one of ${VERBS.join(', ')}`);
  const takesImage = verb === 'pull' || verb === 'inspecti' || verb === 'rmi';
  if (takesImage && !image) throw new UsageError(`${verb} needs an IMAGE`);
  if (extra.length > 0 || (verb === 'imagefsinfo' && image)) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0] ?? image)}`);
  const raw = values['timeout-ms'];
  if (raw !== undefined && !/^[1-9]\d*$/.test(raw)) throw new UsageError(`--timeout-ms must be a positive integer (got ${JSON.stringify(raw)})`);
  const timeoutMs = raw !== undefined ? Number(raw) : verb === 'imagefsinfo' ? IMAGEFSINFO_TIMEOUT_MS : undefined;
  return {
    socket: values.socket ?? DEFAULT_SOCKET,
    verb: verb as Verb,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(image !== undefined ? { image } : {}),
  };
}

function isServiceError(err: unknown): err is ServiceError {
  return typeof err === 'object' && err !== null && typeof (err as ServiceError).code === 'number' && 'details' in err;
}

function noSuchImage(io: CommandIo, verb: string, image: string): number {
  io.stderr.write(`krill cri ${verb}: no such image ${JSON.stringify(image)} present\n`);
  return 1;
}

function parseJson(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/** crictl's filter: the name matches a repo tag or repo digest, with or without its tag. */
function matches(i: Image, name: string): boolean {
  return [...i.repoTags, ...i.repoDigests].some((r) => r === name || r.startsWith(`${name}:`) || r.startsWith(`${name}@`));
}

/** crictl's `images` table: one row per repo tag (`<none>` for an image known only by digest). */
function imageTable(images: Image[]): string {
  const rows = [['IMAGE', 'TAG', 'IMAGE ID', 'SIZE']];
  for (const i of images) {
    const id = i.id.replace(/^sha256:/, '').slice(0, 13);
    const refs = i.repoTags.length > 0 ? i.repoTags.map(splitTag) : i.repoDigests.map((d) => [d.split('@')[0]!, '<none>'] as const);
    for (const [repo, tag] of refs.length > 0 ? refs : [['<none>', '<none>'] as const]) rows.push([repo, tag, id, humanSize(i.size)]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + 3))).join('')).join('\n') + '\n';
}

/** `repo:tag` split at the tag's colon (not a registry port's). */
function splitTag(ref: string): readonly [string, string] {
  const at = ref.lastIndexOf(':');
  return at > ref.lastIndexOf('/') ? [ref.slice(0, at), ref.slice(at + 1)] : [ref, '<none>'];
}

/** Decimal units with 3 significant digits, as crictl's (docker's units.HumanSize). */
function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${Number(n.toPrecision(3))}${units[u]}`;
}
