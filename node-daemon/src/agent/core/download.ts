import { EventEmitter } from 'node:events';
import {
  CanceledError, PieceFile, Swarm, UnavailableError, isCategory, type Digest, type Logger, type Metainfo, type Pacer, type PeerNode,
} from '@krill/lib';
import type { OriginClient, TrackerClient } from '@krill/cluster-services';
import type { BlobCache } from '../blob-cache.js';
import type { BytesBySource } from '../agent.js';
import type { AgentConfig } from '../config.js';
import { HttpPieces } from './http-pieces.js';

/** What a download needs from its agent. */
export interface DownloadDeps {
  node: PeerNode;
  tracker: TrackerClient | undefined;
  origins: OriginClient;
  /** The peer endpoints of the blob's owner origins (those that answer). */
  originPeers(digest: Digest): Promise<Array<{ ip: string; port: number }>>;
  cache: BlobCache;
  config: AgentConfig;
  self: { ip: string; port: number; peerId: string };
  ingress: Pacer;
  egress: Pacer;
  logger: Logger;
}

/** How often the download checks its progress, dials more peers, and decides on fallbacks. */
const TICK_MS = 500;
/**
 * Agents this one dials kept even when others that dialled it fill its slots: three peers of each
 * agent's own choosing join the swarm into one (see Swarm's dialledReserve).
 */
const DIALLED_RESERVE = 3;

/**
 * One blob's download and then its seeding: the piece file in the cache, the swarm registered
 * with the agent's peer node, the announce loop, the dialling of origins and tracker peers, the
 * HTTP fallback, and the stall timeout. Emits `failed` (error) once if it cannot finish; `done`
 * settles with the outcome. After completion it keeps seeding for `seedMs`, then `closed`.
 */
export class Download extends EventEmitter {
  error: Error | undefined;
  readonly done: Promise<void>;
  private settle!: { resolve: () => void; reject: (err: Error) => void };
  private swarm!: Swarm;
  private file!: PieceFile;
  private http: HttpPieces | undefined;
  private readonly dialed = new Map<string, number>();
  /** Dials to agents under way (origins are dialled whatever the count). */
  private dialing = 0;
  private lastProgress = Date.now();
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  private seedUntil = Infinity;
  private finished = false;
  private stopped = false;
  /** Why the last tracker and origin attempts failed, for the stall error. */
  private readonly trouble = { tracker: '', origins: '' };

  constructor(readonly namespace: string, readonly metainfo: Metainfo, private readonly d: DownloadDeps) {
    super();
    this.setMaxListeners(0);
    this.done = new Promise((resolve, reject) => { this.settle = { resolve, reject }; });
    // A download nobody awaits must not crash the process when it fails.
    this.done.catch(() => undefined);
  }

  get digest(): Digest {
    return this.metainfo.digest;
  }

  get complete(): boolean {
    return this.finished;
  }

  get pieceFile(): PieceFile {
    return this.file;
  }

  received(): BytesBySource {
    return { peers: this.swarm?.received.peer ?? 0, origins: this.swarm?.received.origin ?? 0, originHttp: this.http?.received ?? 0 };
  }

  served(): number {
    return this.swarm?.served ?? 0;
  }

  /** Opens (or resumes) the piece file and starts fetching. */
  async start(): Promise<void> {
    const { cache, config } = this.d;
    const { dataPath } = await cache.reserve(this.metainfo);
    this.file = await PieceFile.open(dataPath, this.metainfo);
    if (this.file.presentCount > 0) this.d.logger.info({ digest: this.digest, pieces: this.file.presentCount }, 'resuming a partial download');
    this.swarm = new Swarm({
      file: this.file, pipeline: config.p2p.pipeline, requestTimeoutMs: config.p2p.requestTimeoutMs,
      maxPeers: config.p2p.maxConnections, dialledReserve: DIALLED_RESERVE, ingress: this.d.ingress, egress: this.d.egress,
    });
    this.swarm.on('complete', () => void this.completed());
    this.swarm.on('error', (err: Error) => void this.fail(err, true));
    this.swarm.on('warning', (err: Error) => this.d.logger.warn({ digest: this.digest, err: err.message }, 'swarm warning'));
    this.swarm.on('blacklist', (peer: string, reason: string) => this.d.logger.warn({ digest: this.digest, peer, reason }, 'peer blacklisted'));
    this.file.on('piece', () => { this.lastProgress = Date.now(); });
    this.d.node.register(this.digest, this.namespace, this.swarm);
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    void this.announce();
    void this.dialOrigins();
  }

  /** Stops an unfinished download nobody reads any more; its verified pieces stay for a resume. */
  async abandon(): Promise<void> {
    if (!this.finished && !this.error) this.fail(new CanceledError(`download of ${this.digest} abandoned: no reader needs it any more`, { code: 'ERR_DOWNLOAD_ABANDONED' }), false);
    await this.stop();
  }

  /** Stops everything now (agent shutdown); a partial blob stays on disk to resume. */
  async close(): Promise<void> {
    if (!this.finished && !this.error) this.fail(new UnavailableError(`download of ${this.digest} stopped: the agent is shutting down`, { code: 'ERR_AGENT_CLOSED' }), false);
    await this.stop();
  }

  private tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    if (this.finished) {
      if (now >= this.seedUntil) void this.stop();
      return;
    }
    const { config } = this.d;
    if (now - this.lastProgress > config.stallTimeoutMs) {
      const tried = [this.trouble.tracker && `trackers: ${this.trouble.tracker}`, this.trouble.origins && `origins: ${this.trouble.origins}`].filter(Boolean).join('; ');
      this.fail(new UnavailableError(`download of ${this.digest} made no progress for ${config.stallTimeoutMs} ms (${this.swarm.peerCount} peers connected${tried ? `; ${tried}` : ''})`, { code: 'ERR_AGENT_UNAVAILABLE' }), false);
      return;
    }
    if (this.swarm.originCount === 0) void this.dialOrigins();
    // Nobody to talk to over the wire for a while: read pieces from the origins over HTTP.
    if (!this.http && this.swarm.peerCount === 0 && now - Math.max(this.startedAt, this.lastProgress) > config.httpFallbackAfterMs) {
      this.d.logger.warn({ digest: this.digest }, 'no peer connection; reading pieces from the origins over HTTP');
      this.http = new HttpPieces(this.file, this.namespace, this.d.origins, this.d.ingress, (err) => { this.trouble.origins = err.message; });
      this.http.run();
    }
  }

  private async completed(): Promise<void> {
    try {
      await this.d.cache.commit(this.digest);
    } catch (err) {
      return this.fail(err as Error, false);
    }
    // Abandoned or closed while the last piece was being committed: the blob is whole in the
    // cache, but this download already ended.
    if (this.error || this.stopped) return;
    this.finished = true;
    this.http?.stop();
    this.seedUntil = Date.now() + this.d.config.seedMs;
    const r = this.received();
    const wasted = this.swarm.discarded;
    this.d.logger.info({ digest: this.digest, size: this.metainfo.length, ms: Date.now() - this.startedAt, ...r, discardedOrigin: wasted.origin, discardedPeers: wasted.peer }, 'blob complete');
    this.settle.resolve();
    void this.announce();
  }

  private fail(err: Error, corrupt: boolean): void {
    if (this.error || this.finished) return;
    this.error = err;
    this.d.logger.warn({ digest: this.digest, err: err.message }, 'download failed');
    this.emit('failed', err);
    this.settle.reject(err);
    void this.stop().then(() => (corrupt ? this.d.cache.discard(this.digest) : undefined));
  }

  private async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.announceTimer);
    this.http?.stop();
    this.d.node.unregister(this.digest);
    this.swarm?.close();
    await this.file?.close();
    this.d.cache.release(this.digest);
    this.emit('closed');
  }

  /** Announces to the tracker and dials the peers it hands out, then again after its interval. */
  private async announce(): Promise<void> {
    const { tracker, config, self } = this.d;
    if (!tracker || this.stopped) return;
    let interval = config.p2p.announceRetryMs;
    try {
      const res = await tracker.announce({ digest: this.digest, namespace: this.namespace, peerId: self.peerId, ip: self.ip, port: self.port, complete: this.finished });
      interval = res.intervalMs;
      this.trouble.tracker = '';
      for (const p of res.peers) if (p.peerId !== self.peerId) this.dial(p.ip, p.port, p.origin);
    } catch (err) {
      this.trouble.tracker = (err as Error).message;
      this.d.logger.debug({ digest: this.digest, err: (err as Error).message }, 'announce failed');
    }
    if (this.stopped) return;
    clearTimeout(this.announceTimer);
    this.announceTimer = setTimeout(() => void this.announce(), interval);
    this.announceTimer.unref();
  }

  private async dialOrigins(): Promise<void> {
    try {
      const peers = await this.d.originPeers(this.digest);
      for (const p of peers) this.dial(p.ip, p.port, true);
    } catch (err) {
      this.trouble.origins = (err as Error).message;
    }
  }

  /** Dials a peer unless enough are connected or it was tried within the redial interval. */
  private dial(ip: string, port: number, origin: boolean): void {
    const { config, node } = this.d;
    if (this.stopped || this.finished) return;
    // Origins whatever the agents connected; agents while the swarm would keep one more.
    if (!this.swarm.hasRoom(origin, true, this.dialing)) return;
    const key = `${ip}:${port}`;
    const last = this.dialed.get(key);
    if (last !== undefined && Date.now() - last < config.p2p.redialMs) return;
    this.dialed.set(key, Date.now());
    if (!origin) this.dialing++;
    node.connect(ip, port, this.digest, { origin }).catch((err: unknown) => {
      if (origin && !isCategory(err, 'NotFound')) this.trouble.origins = `peer ${key}: ${(err as Error).message}`;
      this.d.logger.debug({ digest: this.digest, peer: key, err: (err as Error).message }, 'dial failed');
    }).finally(() => { if (!origin) this.dialing--; });
  }
}
