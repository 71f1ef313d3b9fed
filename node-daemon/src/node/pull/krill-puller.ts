import { createHash } from 'node:crypto';
import { Counter, Histogram, type Registry } from 'prom-client';
import { CanceledError, isCategory, isKrillError, type Logger } from '@krill/lib';
import type { BuildIndexClient, UpstreamCredentials } from '@krill/cluster-services';
import type { ImagePuller, PullOutcome } from '@krill/cri-proxy';
import type { PullImageRequest } from '@krill/proto';
import type { Agent, BytesBySource } from '../../agent/agent.js';
import type { Containerd, ContainerdCri } from '../../containerd/containerd.js';
import { registryRule, type CriConfig } from '../node-config.js';
import { parseImageReference } from '../reference.js';
import { callerCredentials } from './caller-auth.js';
import { ImageIngest } from './ingest-image.js';
import { nodePlatform, resolveImage, type Platform } from './resolve-image.js';
import { SharedWork } from './shared-work.js';

export interface PullerDeps {
  config: CriConfig;
  agent: Agent;
  buildIndex: BuildIndexClient;
  containerd: Containerd;
  cri: ContainerdCri;
  snapshotter: string;
  logger: Logger;
  metrics: Registry;
  platform?: Platform;
}

/**
 * Errors that are the answer whatever puller is asked: forwarding them to containerd would give
 * the same answer later. Everything else krill could not do is handed to containerd (`auto`).
 */
function isFinal(err: unknown, callerAborted: boolean): boolean {
  return callerAborted || isCategory(err, 'Unauthenticated') || (isKrillError(err) && err.code === 'ERR_REFERENCE_INVALID');
}

/**
 * krill's PullImage (the ImagePuller the CRI socket calls): normalizes the reference, applies
 * the registry's mode, resolves and fetches through the agent, ingests into containerd, and in
 * `auto` hands the request back to containerd when any of that fails or takes longer than
 * `pullTimeoutMs`. Concurrent pulls of one reference share one attempt.
 */
export function createKrillPuller(d: PullerDeps): ImagePuller {
  const ingest = new ImageIngest({ agent: d.agent, containerd: d.containerd, cri: d.cri, snapshotter: d.snapshotter, onReceived: (r) => count(r), logger: d.logger });
  const pulls = new SharedWork<string>();
  const platform = d.platform ?? nodePlatform();
  /** Requests handed to containerd by mode `direct`, not by a failure. */
  const direct = new WeakSet<PullImageRequest>();
  const m = d.metrics;
  const pullsTotal = new Counter({ name: 'krill_node_pulls_total', help: 'PullImage calls by how they were answered: krill, fallback (containerd after krill failed), direct (mode direct), error.', labelNames: ['via'], registers: [m] });
  const fallbacks = new Counter({ name: 'krill_node_pull_fallbacks_total', help: 'PullImage calls krill handed to containerd because it could not serve them.', registers: [m] });
  const bytes = new Counter({ name: 'krill_node_pull_bytes_total', help: 'Image bytes pulled, by source: peers, origins (peer wire), origin_http, containerd (its own pull after a fallback: the image size).', labelNames: ['source'], registers: [m] });
  // From a cached image (well under a second) to a multi-GB one (minutes).
  const seconds = new Histogram({ name: 'krill_node_pull_duration_seconds', help: 'Duration of PullImage calls answered by krill.', registers: [m], buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900] });
  function count(r: BytesBySource): void {
    if (r.peers) bytes.inc({ source: 'peers' }, r.peers);
    if (r.origins) bytes.inc({ source: 'origins' }, r.origins);
    if (r.originHttp) bytes.inc({ source: 'origin_http' }, r.originHttp);
  }

  /** containerd's sandbox image, normalized; read once, as it changes only with a restart. */
  let sandbox: Promise<string | undefined> | undefined;
  const sandboxImage = () => (sandbox ??= d.cri.sandboxImage().then((s) => (s ? parseImageReference(s).normalized : undefined), () => { sandbox = undefined; return undefined; }));

  async function attempt(ref: ReturnType<typeof parseImageReference>, repo: string, creds: UpstreamCredentials | undefined, signal: AbortSignal): Promise<string> {
    const img = await resolveImage(ref, repo, { agent: d.agent, buildIndex: d.buildIndex, platform, onReceived: count }, signal, creds);
    const sandbox = await sandboxImage();
    return ingest.ingest(ref, img, signal, { pinned: sandbox === ref.normalized });
  }

  return {
    async pull(request: PullImageRequest, o): Promise<PullOutcome> {
      const started = performance.now();
      const ref = parseImageReference(request.image?.image ?? '');
      const rule = registryRule(d.config, ref.domain);
      if (rule.mode === 'direct') {
        direct.add(request);
        return { forward: `registry ${ref.domain} is direct-only` };
      }
      const repo = rule.repositoryPrefix + ref.path;
      const creds = callerCredentials(request.auth, ref.domain);
      // Pulls share work only with pulls that bring the same credentials: another caller's
      // accepted credentials must not let a rejected one through.
      const key = creds ? `${ref.normalized} ${createHash('sha256').update(`${creds.username}:${creds.password}`).digest('hex')}` : ref.normalized;
      const timeout = AbortSignal.timeout(d.config.pullTimeoutMs);
      const signal = AbortSignal.any([o.signal, timeout]);
      try {
        const imageRef = await pulls.run(key, signal, (s) => attempt(ref, repo, creds, s));
        pullsTotal.inc({ via: 'krill' });
        seconds.observe((performance.now() - started) / 1000);
        return { imageRef };
      } catch (err) {
        const why = timeout.aborted && !o.signal.aborted ? `krill did not finish within ${d.config.pullTimeoutMs} ms` : (err as Error).message;
        if (rule.mode === 'krill' || isFinal(err, o.signal.aborted)) {
          pullsTotal.inc({ via: 'error' });
          if (o.signal.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new CanceledError('PullImage cancelled', { code: 'ERR_PULL_CANCELED' });
          throw err;
        }
        fallbacks.inc();
        d.logger.warn({ ref: ref.normalized, repo, err: why }, 'krill could not serve the pull; handing it to containerd');
        return { forward: why };
      }
    },
    forwarded(request, result) {
      if ('imageRef' in result) {
        pullsTotal.inc({ via: direct.has(request) ? 'direct' : 'fallback' });
        void d.cri.imageSize(result.imageRef).then((n) => { if (n) bytes.inc({ source: 'containerd' }, n); }, () => {});
      } else {
        pullsTotal.inc({ via: 'error' });
        d.logger.warn({ ref: request.image?.image, code: result.code, err: result.details }, 'containerd\'s own pull failed too');
      }
    },
  };
}
