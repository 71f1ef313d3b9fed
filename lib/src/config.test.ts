import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envName, envNames, loadConfig, validateConfig } from './config.js';

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: {
      type: 'object', additionalProperties: false, default: {},
      properties: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'integer', minimum: 0, maximum: 65535, default: 15002 } },
    },
    store: {
      type: 'object', additionalProperties: false, required: ['dir'],
      properties: { dir: { type: 'string' }, capacityBytes: { type: 'integer', minimum: 1, default: 1000 } },
    },
    logLevel: { enum: ['debug', 'info', 'warn'], default: 'info' },
  },
  required: ['store'],
};

function file(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'krill-config-')), 'c.yaml');
  writeFileSync(f, text);
  return f;
}

describe('loadConfig', () => {
  it('reads YAML, fills defaults and freezes', () => {
    const c = loadConfig<{ listen: { host: string; port: number }; store: { dir: string; capacityBytes: number } }>({ file: file('store:\n  dir: /x\n'), schema });
    expect(c).toEqual({ listen: { host: '127.0.0.1', port: 15002 }, store: { dir: '/x', capacityBytes: 1000 }, logLevel: 'info' });
    expect(Object.isFrozen(c.store)).toBe(true);
  });

  it('names the key and what was expected for a wrong type', () => {
    expect(() => loadConfig({ file: file('store:\n  dir: /x\n  capacityBytes: lots\n'), schema }))
      .toThrow(/config key store\.capacityBytes .*must be integer \(got "lots"\)/);
  });

  it('names an unknown key', () => {
    expect(() => loadConfig({ file: file('store: { dir: /x }\nlisten: { prot: 1 }\n'), schema })).toThrow(/config key listen\.prot .*unknown key/);
  });

  it('names a missing required key', () => {
    expect(() => loadConfig({ file: file('store: {}\n'), schema })).toThrow(/config key store\.dir.*is required/);
  });

  it('lists the allowed values of an enum', () => {
    expect(() => loadConfig({ file: file('store: { dir: /x }\nlogLevel: loud\n'), schema })).toThrow(/logLevel.*one of debug, info, warn.*"loud"/);
  });

  it('rejects YAML that does not parse, with the file name', () => {
    const f = file('store: [unclosed\n');
    expect(() => loadConfig({ file: f, schema })).toThrow(new RegExp(`config file ${f}: not valid YAML`));
  });

  it('applies environment overrides for every key, parsed as YAML scalars', () => {
    const c = loadConfig<{ listen: { port: number }; store: { dir: string; capacityBytes: number } }>({
      file: file('store: { dir: /x }\n'), schema, envPrefix: 'KRILL_ORIGIN',
      env: { KRILL_ORIGIN_LISTEN__PORT: '9999', KRILL_ORIGIN_STORE__CAPACITY_BYTES: '5', KRILL_ORIGIN_STORE__DIR: '/y' },
    });
    expect(c.listen.port).toBe(9999);
    expect(c.store).toEqual({ dir: '/y', capacityBytes: 5 });
  });

  it('validates environment overrides like file values', () => {
    expect(() => loadConfig({ schema, env: { KRILL_STORE__DIR: '/x', KRILL_LISTEN__PORT: '70000' } })).toThrow(/listen\.port.*must be <= 65535/);
  });

  it('lists every override variable', () => {
    expect(envName('KRILL', ['store', 'capacityBytes'])).toBe('KRILL_STORE__CAPACITY_BYTES');
    expect(envNames(schema)).toEqual(['KRILL_LISTEN', 'KRILL_LISTEN__HOST', 'KRILL_LISTEN__PORT', 'KRILL_STORE', 'KRILL_STORE__DIR', 'KRILL_STORE__CAPACITY_BYTES', 'KRILL_LOG_LEVEL']);
  });

  it('validateConfig does not change its input', () => {
    const input = { store: { dir: '/x' } };
    validateConfig(schema, input);
    expect(input).toEqual({ store: { dir: '/x' } });
  });
});
