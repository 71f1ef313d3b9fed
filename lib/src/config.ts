import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { InvalidArgumentError } from './errors.js';

/** A JSON Schema fragment; each module exports the schema of its own config beside its code. */
export type Schema = Record<string, unknown>;

export interface LoadConfigOptions {
  /** YAML file to read; absent means "defaults plus environment". */
  file?: string | undefined;
  /** The JSON Schema of the whole config, with `default`s; unknown keys are rejected. */
  schema: Schema;
  /** The environment to read overrides from (the program passes process.env). */
  env?: Record<string, string | undefined>;
  /** Prefix of override variables; `KRILL` gives `KRILL_STORE__CAPACITY_BYTES`. */
  envPrefix?: string;
}

/**
 * Reads YAML, applies environment overrides, fills defaults, validates and freezes.
 * Errors are InvalidArgument (ERR_CONFIG_INVALID) with a message naming the key and what was
 * expected, for example `config key store.capacityBytes: must be integer (got "lots")`.
 */
export function loadConfig<T>(options: LoadConfigOptions): T {
  let doc: unknown = {};
  if (options.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (cause) {
      throw new InvalidArgumentError(`config file ${options.file}: cannot be read`, { code: 'ERR_CONFIG_INVALID', cause });
    }
    try {
      doc = parseYaml(text) ?? {};
    } catch (cause) {
      throw new InvalidArgumentError(`config file ${options.file}: not valid YAML: ${(cause as Error).message}`, { code: 'ERR_CONFIG_INVALID', cause });
    }
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      throw new InvalidArgumentError(`config file ${options.file}: must be a YAML mapping`, { code: 'ERR_CONFIG_INVALID' });
    }
  }
  const config = doc as Record<string, unknown>;
  applyEnv(config, options.schema, [], options.env ?? {}, options.envPrefix ?? 'KRILL');
  return validateConfig<T>(options.schema, config, options.file);
}

/**
 * Fills defaults into a copy of `doc`, validates it against `schema` and freezes it. Programs and
 * tests that build a config in code use this; `source` names it in errors.
 */
export function validateConfig<T>(schema: Schema, doc: unknown, source?: string): T {
  const config = structuredClone(doc ?? {}) as Record<string, unknown>;
  // `verbose` gives each error its schema, where an `errorMessage` may say what a combination
  // (anyOf) wants better than its branches' errors do.
  const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: false, verbose: true });
  const validate = ajv.compile(schema);
  if (!validate(config)) {
    throw new InvalidArgumentError(describe(validate.errors ?? [], config, source), { code: 'ERR_CONFIG_INVALID' });
  }
  return deepFreeze(config) as T;
}

/** The environment variable that overrides the key at `path`: KRILL_STORE__CAPACITY_BYTES. */
export function envName(prefix: string, path: readonly string[]): string {
  return `${prefix}_${path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('__')}`;
}

/** Every override variable a schema accepts, for `--help` output. */
export function envNames(schema: Schema, prefix = 'KRILL'): string[] {
  const out: string[] = [];
  walk(schema, [], (path) => out.push(envName(prefix, path)));
  return out;
}

function walk(schema: Schema, path: string[], leaf: (path: string[]) => void): void {
  const props = schema['properties'] as Record<string, Schema> | undefined;
  if (path.length > 0) leaf(path);
  if (!props) return;
  for (const [key, sub] of Object.entries(props)) walk(sub, [...path, key], leaf);
}

function applyEnv(config: Record<string, unknown>, schema: Schema, base: string[], env: Record<string, string | undefined>, prefix: string): void {
  walk(schema, base, (path) => {
    const value = env[envName(prefix, path)];
    if (value === undefined) return;
    let target = config;
    for (const key of path.slice(0, -1)) {
      const next = target[key];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) target[key] = {};
      target = target[key] as Record<string, unknown>;
    }
    // Values are YAML scalars or flow collections, so numbers, booleans and lists all work.
    let parsed: unknown;
    try {
      parsed = parseYaml(value);
    } catch {
      parsed = value;
    }
    target[path[path.length - 1]!] = parsed;
  });
}

/**
 * The message for the first failure. A schema with an `errorMessage` string (e.g. "needs urls,
 * dns or both") speaks for its `anyOf`: ajv lists every branch's error before the anyOf's own,
 * and "urls is required" would be only half the truth.
 */
function describe(errors: ErrorObject[], config: unknown, file: string | undefined): string {
  const where = file ? ` in ${file}` : '';
  const custom = errors.find((e) => e.keyword === 'anyOf' && typeof (e.parentSchema as Schema | undefined)?.['errorMessage'] === 'string');
  const err = custom ?? errors[0];
  if (!err) return `config${where} is invalid`;
  const segments = err.instancePath.split('/').filter(Boolean).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (custom) return `config key ${segments.join('.') || '(root)'}${where}: ${String((custom.parentSchema as Schema)['errorMessage'])}`;
  if (err.keyword === 'additionalProperties') {
    const extra = (err.params as { additionalProperty: string }).additionalProperty;
    return `config key ${[...segments, extra].join('.')}${where}: unknown key`;
  }
  if (err.keyword === 'required') {
    const missing = (err.params as { missingProperty: string }).missingProperty;
    return `config key ${[...segments, missing].join('.')}${where}: is required`;
  }
  let got: unknown = config;
  for (const s of segments) got = (got as Record<string, unknown> | undefined)?.[s];
  const allowed = err.keyword === 'enum' ? ` (one of ${(err.params as { allowedValues: unknown[] }).allowedValues.join(', ')})` : '';
  return `config key ${segments.join('.') || '(root)'}${where}: ${err.message ?? 'is invalid'}${allowed} (got ${JSON.stringify(got)})`;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
