import { describe, expect, it } from 'vitest';
import { validateConfig, type Schema } from './config.js';
import { originsRefSchema, trackersRefSchema, type OriginsRefConfig, type TrackersRefConfig } from './service-schemas.js';

const schema: Schema = {
  type: 'object', additionalProperties: false, required: ['origins'],
  properties: { origins: originsRefSchema, trackers: trackersRefSchema },
};
const check = (doc: unknown) => validateConfig<{ origins: OriginsRefConfig; trackers: TrackersRefConfig }>(schema, doc, 'agent.yaml');
const message = (doc: unknown) => {
  try {
    check(doc);
  } catch (err) {
    return (err as Error).message;
  }
  return 'valid';
};

describe('origins and trackers: urls, dns or both', () => {
  it('accepts urls, dns, or both, with the dns defaults filled in', () => {
    expect(check({ origins: { urls: ['http://a:1'] } }).origins).toEqual({ urls: ['http://a:1'], replicas: 3 });
    const dns = check({ origins: { dns: { name: 'krill-origin.krill.svc.cluster.local', port: 15002 } } });
    expect(dns.origins).toEqual({ urls: [], replicas: 3, dns: { name: 'krill-origin.krill.svc.cluster.local', records: 'A', port: 15002, scheme: 'http', refreshMs: 10_000 } });
    expect(dns.trackers).toEqual({ urls: [] });
    const both = check({ origins: { urls: ['http://a:1'], dns: { name: 'o.krill.test', port: 1, refreshMs: 500 } }, trackers: { dns: { name: 't.krill.test', port: 15003 } } });
    expect(both.origins.urls).toEqual(['http://a:1']);
    expect(both.origins.dns?.refreshMs).toBe(500);
    expect(both.trackers.dns?.port).toBe(15003);
    // SRV records carry the port; one given here overrides theirs.
    const srv = check({ origins: { dns: { name: '_origin._tcp.krill-origin.krill.svc.cluster.local', records: 'SRV' } } });
    expect(srv.origins.dns).toEqual({ name: '_origin._tcp.krill-origin.krill.svc.cluster.local', records: 'SRV', scheme: 'http', refreshMs: 10_000 });
  });

  it('says what is wanted when origins names neither urls nor dns', () => {
    const want = 'config key origins in agent.yaml: needs urls (a static list of base URLs), dns ({ name, port } or { name, records: SRV }: a headless Service whose pods are the members) or both';
    expect(message({ origins: {} })).toBe(want);
    expect(message({ origins: { urls: [] } })).toBe(want);
    expect(message({ origins: { replicas: 2 } })).toBe(want);
  });

  it('names the bad dns key', () => {
    expect(message({ origins: { dns: { name: 'o.krill.test' } } })).toBe('config key origins.dns.port in agent.yaml: is required');
    expect(message({ origins: { dns: { name: 'o.krill.test', records: 'A' } } })).toBe('config key origins.dns.port in agent.yaml: is required');
    expect(message({ origins: { dns: { name: 'o.krill.test', records: 'MX' } } })).toBe('config key origins.dns.records in agent.yaml: must be equal to one of the allowed values (one of A, SRV) (got "MX")');
    expect(message({ origins: { dns: { name: 'o.krill.test', port: 1, scheme: 'https' } } })).toBe('config key origins.dns.scheme in agent.yaml: must be equal to one of the allowed values (one of http) (got "https")');
    expect(message({ origins: { dns: { name: 'http://o.krill.test', port: 1 } } })).toMatch(/^config key origins\.dns\.name in agent\.yaml: must match pattern/);
    expect(message({ origins: { dns: { name: 'o', port: 1, refreshMs: 5 } } })).toBe('config key origins.dns.refreshMs in agent.yaml: must be >= 100 (got 5)');
    expect(message({ origins: { urls: ['http://a:1'] }, trackers: { dns: { port: 1 } } })).toBe('config key trackers.dns.name in agent.yaml: is required');
    expect(message({ origins: { dns: { name: 'o', port: 1, ttl: 3 } } })).toBe('config key origins.dns.ttl in agent.yaml: unknown key');
  });
});
