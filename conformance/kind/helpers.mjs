// What run.sh needs beyond shell: facts read from krill's rendered manifests, the demo Deployment
// with its replicas and tag set, and the per-node report. Plain Node.js (no build step); `yaml` is
// the repository's own dependency. conformance/src/kind.test.ts calls the exported functions.
//
//   node helpers.mjs facts MANIFESTS                 NAMESPACE SOCKET AGENT_PORT PROXY_SERVICE PROXY_PORT IMAGE SIDECAR_UID
//   node helpers.mjs registry-rule MANIFESTS IMAGE   MODE KRILL_REPOSITORY (krill node's rule for IMAGE)
//   node helpers.mjs deployment FILE REPLICAS TAG    the Deployment file with both set
//   node helpers.mjs deployment-facts FILE           NAMESPACE NAME IMAGE
//   node helpers.mjs layout-bytes DIR                the bytes of an OCI layout's image (config and layers)
//   node helpers.mjs report --pods F --events F --metrics-dir D --image REF --digest D --replicas N [--image-bytes B]
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse } from 'yaml';

/** Throws with a message run.sh prints as is. */
function fail(message) {
  throw Object.assign(new Error(message), { code: 'ERR_KIND_HELPER' });
}

/**
 * What the cluster will run, read from `krill manifests` output: the namespace, krill's CRI socket
 * as the node-install sidecar hands it to kubelet (and as krill node's own config has it), the node
 * daemon's loopback registry/metrics port, the proxy Service and its port, the image, and the node
 * config's registry rules and default mode.
 */
export function nodeFacts(manifests) {
  const objects = parseAllDocuments(manifests).map((d) => d.toJS()).filter(Boolean);
  const find = (kind, name) => objects.find((o) => o.kind === kind && o.metadata?.name === name) ?? fail(`no ${kind}/${name} in the manifests`);
  const ds = find('DaemonSet', 'krill-node');
  const containers = ds.spec.template.spec.containers;
  const daemon = containers.find((c) => c.name === 'node') ?? fail('the node DaemonSet has no container "node"');
  const sidecar = containers.find((c) => c.name === 'node-install') ?? fail('the node DaemonSet has no node-install container: set node.kubelet.switch');
  const socketArg = sidecar.command.indexOf('--socket');
  if (socketArg < 0) fail('the node-install container is not given --socket');
  const socket = sidecar.command[socketArg + 1];
  const nodeConfig = parse(find('ConfigMap', 'krill-node').data['node.yaml']);
  if (nodeConfig.cri.socket !== socket) fail(`krill node listens on ${nodeConfig.cri.socket} but kubelet would be pointed at ${socket}`);
  const agentPort = daemon.ports.find((p) => p.name === 'registry')?.containerPort ?? fail('the node container has no "registry" port');
  const proxy = find('Service', 'krill-proxy');
  return {
    namespace: ds.metadata.namespace,
    socket,
    endpoint: `unix://${socket}`,
    socketDir: daemon.volumeMounts.find((m) => m.name === 'krill-sockets')?.mountPath,
    agentPort,
    proxyService: proxy.metadata.name,
    proxyPort: proxy.spec.ports[0].port,
    /** The one image every component runs (`repository:tag`). */
    image: daemon.image,
    /** The node-install container's runAsUser; unset, it runs as the image's USER. It must be root to edit kubelet's config. */
    sidecarRunAsUser: sidecar.securityContext?.runAsUser ?? ds.spec.template.spec.securityContext?.runAsUser,
    registries: nodeConfig.cri.registries ?? [],
    defaultMode: nodeConfig.cri.defaultMode,
  };
}

/**
 * What krill node does with `image` (README, "Node (krill node)"): its host's rule, or the default
 * mode, and krill's repository for it, `repositoryPrefix + path`.
 */
export function registryRule(facts, image) {
  const { host, path } = splitImage(image);
  const rule = facts.registries.find((r) => r.host === host);
  return { mode: rule?.mode ?? facts.defaultMode ?? 'auto', repository: `${rule?.repositoryPrefix ?? ''}${path}` };
}

/** Bytes of an OCI layout's single image as a registry stores it: its config and layers. */
export function layoutBytes(dir) {
  const blob = (d) => JSON.parse(readFileSync(join(dir, 'blobs', 'sha256', d.digest.slice('sha256:'.length)), 'utf8'));
  const manifest = blob(JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')).manifests[0]);
  return [manifest.config, ...manifest.layers].reduce((a, d) => a + d.size, 0);
}

/** `host/path:tag` → its parts; the host is the first component, as the Deployment's images always name one. */
export function splitImage(image) {
  const m = /^([^/]+)\/(.+):([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$/.exec(image);
  if (!m) fail(`${image} is not host/path:tag`);
  return { host: m[1], path: m[2], tag: m[3], repository: `${m[1]}/${m[2]}` };
}

/** The demo Namespace and Deployment with `replicas` and the image's tag set; comments kept. */
export function renderDeployment(text, { replicas, tag }) {
  if (!Number.isInteger(replicas) || replicas < 1) fail(`replicas must be a positive integer (got ${replicas})`);
  const docs = parseAllDocuments(text);
  const deployment = docs.find((d) => d.get('kind') === 'Deployment') ?? fail('no Deployment in the file');
  const { repository } = splitImage(deployment.getIn(['spec', 'template', 'spec', 'containers', 0, 'image']));
  deployment.setIn(['spec', 'replicas'], replicas);
  deployment.setIn(['spec', 'template', 'spec', 'containers', 0, 'image'], splitImage(`${repository}:${tag}`).repository + `:${tag}`);
  // Each document after the first keeps its own `---`; lineWidth 0 leaves the lines as written.
  return docs.map((d, i) => { const s = d.toString({ lineWidth: 0 }); return i === 0 || s.startsWith('---') ? s : `---\n${s}`; }).join('');
}

/** The Deployment's facts: namespace, name, replicas, image. */
export function deploymentFacts(text) {
  const d = parseAllDocuments(text).map((x) => x.toJS()).find((o) => o?.kind === 'Deployment') ?? fail('no Deployment in the file');
  return { namespace: d.metadata.namespace, name: d.metadata.name, replicas: d.spec.replicas, image: d.spec.template.spec.containers[0].image, spec: d.spec };
}

/** Prometheus text exposition (format 0.0.4): every sample as { name, labels, value }. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The sum of a metric's samples whose labels include `match`. */
export function metricSum(samples, name, match = {}) {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** Seconds of a Go duration as kubelet prints it (`1m2.5s`, `850ms`, `12.3456s`). */
export function parseGoDuration(s) {
  const unit = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, 'µs': 1e-6, 'μs': 1e-6, ns: 1e-9 };
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ms|us|µs|μs|ns|h|m|s)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== s) fail(`not a Go duration: ${s}`);
  return parts.reduce((a, p) => a + Number(p[1]) * unit[p[2]], 0);
}

/** kubelet's event for a pull it made (1.28+; 1.30+ appends the image size). */
const PULLED = /^Successfully pulled image "([^"]+)" in ((?:\d+(?:\.\d+)?(?:ms|us|µs|μs|ns|h|m|s))+)(?: |\.|$)/;

/** The delta of each node's pull metrics between two scrapes (counters only grow while the daemon lives). */
function metricDelta(before, after) {
  const d = (name, match) => metricSum(after, name, match) - metricSum(before, name, match);
  return {
    krillPulls: d('krill_node_pulls_total', { via: 'krill' }),
    failedPulls: d('krill_node_pulls_total', { via: 'error' }),
    krillSeconds: d('krill_node_pull_duration_seconds_sum'),
    bytes: Object.fromEntries(['peers', 'origins', 'origin_http', 'containerd'].map((s) => [s, d('krill_node_pull_bytes_total', { source: s })])),
  };
}

/**
 * The per-node report and the checks: every pod Ready and running `image` at `digest`, `replicas`
 * pods, and every node that runs one got it from krill (a `via=krill` pull) unless it already had
 * it. `metrics` maps node → { before, after } scrape text; `pods` and `events` are kubectl's JSON lists.
 */
export function buildReport({ pods, events, metrics, image, digest, replicas }) {
  const { repository } = splitImage(image);
  const problems = [];
  const warnings = [];
  const nodes = new Map(Object.keys(metrics).sort().map((n) => [n, { node: n, pods: 0, pullSeconds: undefined, ...metricDelta(parseMetrics(metrics[n].before), parseMetrics(metrics[n].after)) }]));
  const podNode = new Map();
  for (const p of pods.items) {
    const name = p.metadata.name;
    podNode.set(name, p.spec.nodeName);
    const row = nodes.get(p.spec.nodeName);
    if (row) row.pods++;
    else problems.push(`pod ${name} runs on ${p.spec.nodeName}, a node with no metrics`);
    const ready = p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    if (!ready) problems.push(`pod ${name} is not Ready`);
    const status = p.status.containerStatuses?.[0];
    const imageId = (status?.imageID ?? '').replace(/^[a-z-]+:\/\//, '');
    if (imageId !== `${repository}@${digest}`) problems.push(`pod ${name} runs ${imageId || 'no image'}, not ${repository}@${digest}`);
  }
  if (pods.items.length !== replicas) problems.push(`${pods.items.length} pods, not ${replicas}`);
  for (const e of events.items) {
    const m = e.reason === 'Pulled' && e.involvedObject?.kind === 'Pod' ? PULLED.exec(e.message ?? '') : null;
    const row = m && m[1] === image ? nodes.get(podNode.get(e.involvedObject.name)) : undefined;
    if (row) row.pullSeconds = Math.max(row.pullSeconds ?? 0, parseGoDuration(m[2]));
  }
  for (const r of nodes.values()) {
    if (r.pods > 0 && r.krillPulls === 0 && r.pullSeconds !== undefined) problems.push(`kubelet on ${r.node} pulled ${image} but krill answered no pull there`);
    if (r.failedPulls > 0) warnings.push(`${r.node}: ${r.failedPulls} PullImage calls failed in krill (see its log)`);
    if (r.bytes.containerd > 0) warnings.push(`${r.node}: containerd pulled ${r.bytes.containerd} bytes itself (a fallback or a direct pull)`);
  }
  const rows = [...nodes.values()];
  if (rows.reduce((a, r) => a + r.bytes.peers, 0) === 0) warnings.push('no node got any bytes from a peer: every byte came from the origins');
  return { rows, problems, warnings };
}

const mb = (n) => (n / 1e6).toFixed(1);

/** The report as a fixed-width table, totals last. */
export function formatReport({ rows }) {
  const head = ['node', 'pods', 'pull s', 'krill pulls', 'peers MB', 'origins MB', 'origin http MB', 'containerd MB'];
  const line = (r) => [r.node, String(r.pods), r.pullSeconds === undefined ? '-' : r.pullSeconds.toFixed(1), String(r.krillPulls), mb(r.bytes.peers), mb(r.bytes.origins), mb(r.bytes.origin_http), mb(r.bytes.containerd)];
  const sum = (f) => rows.reduce((a, r) => a + f(r), 0);
  const total = ['total', String(sum((r) => r.pods)), '', String(sum((r) => r.krillPulls)), ...['peers', 'origins', 'origin_http', 'containerd'].map((s) => mb(sum((r) => r.bytes[s])))];
  const table = [head, ...rows.map(line), total];
  const widths = head.map((_, i) => Math.max(...table.map((t) => t[i].length)));
  return table.map((t) => t.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n') + '\n';
}

function flags(args) {
  const o = {};
  for (let i = 0; i < args.length; i += 2) {
    if (!args[i].startsWith('--') || args[i + 1] === undefined) fail(`bad arguments: ${args.join(' ')}`);
    o[args[i].slice(2)] = args[i + 1];
  }
  return o;
}

function report(args) {
  const o = flags(args);
  const json = (f) => JSON.parse(readFileSync(f, 'utf8'));
  const metrics = {};
  for (const f of readdirSync(o['metrics-dir'])) {
    const m = /^(.+)\.(before|after)$/.exec(f);
    if (m) (metrics[m[1]] ??= { before: '', after: '' })[m[2]] = readFileSync(join(o['metrics-dir'], f), 'utf8');
  }
  const r = buildReport({ pods: json(o.pods), events: json(o.events), metrics, image: o.image, digest: o.digest, replicas: Number(o.replicas) });
  if (o['image-bytes']) process.stdout.write(`image ${o.image}@${o.digest}: ${mb(Number(o['image-bytes']))} MB (config and layers); a node that pulled it gets about that much in all\n`);
  process.stdout.write(formatReport(r));
  for (const w of r.warnings) process.stdout.write(`warning: ${w}\n`);
  for (const p of r.problems) process.stderr.write(`FAIL: ${p}\n`);
  return r.problems.length === 0 ? 0 : 1;
}

function main([command, ...args]) {
  switch (command) {
    case 'facts': {
      const f = nodeFacts(readFileSync(args[0], 'utf8'));
      process.stdout.write(`${f.namespace} ${f.socket} ${f.agentPort} ${f.proxyService} ${f.proxyPort} ${f.image} ${f.sidecarRunAsUser ?? '-'}\n`);
      return 0;
    }
    case 'registry-rule': {
      const r = registryRule(nodeFacts(readFileSync(args[0], 'utf8')), args[1]);
      process.stdout.write(`${r.mode} ${r.repository}\n`);
      return 0;
    }
    case 'deployment':
      process.stdout.write(renderDeployment(readFileSync(args[0], 'utf8'), { replicas: Number(args[1]), tag: args[2] }));
      return 0;
    case 'deployment-facts': {
      const d = deploymentFacts(readFileSync(args[0], 'utf8'));
      process.stdout.write(`${d.namespace} ${d.name} ${d.image}\n`);
      return 0;
    }
    case 'layout-bytes':
      process.stdout.write(`${layoutBytes(args[0])}\n`);
      return 0;
    case 'report':
      return report(args);
    default:
      fail(`unknown command ${command}: facts, registry-rule, deployment, deployment-facts, layout-bytes or report`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`helpers.mjs: ${err.message}\n`);
    process.exitCode = 2;
  }
}
