import type { Registry } from 'prom-client';
import { InvalidArgumentError, NotFoundError, validateConfig, type Logger } from '@krill/lib';
import type { Backend, BackendRouter } from './backend.js';
import { validateNamespace } from './blob-key.js';
import { BACKEND_KINDS, backendRuleSchema, kindsOf, type BackendKind, type BackendRuleConfig } from './config.js';
import { createFsBackend } from './fs/fs-backend.js';
import { createHttpBackend } from './http/http-backend.js';
import { instrumentBackend } from './instrumented.js';
import { createRegistryBackend } from './registry/index.js';
import { createS3Backend } from './s3/s3-backend.js';

/** What the registry kind needs: the upstream registries by name, as its factory declares them. */
export type RegistriesConfig = Parameters<typeof createRegistryBackend>[0]['registries'];

export interface BackendRouterOptions {
  /** Ordered rules; see BackendRuleConfig. Defaults are filled in here if the caller has not. */
  rules: readonly BackendRuleConfig[];
  /** Upstream registries for rules of kind `registry`. */
  registries: RegistriesConfig;
  logger: Logger;
  /** The service's Prometheus registry for `krill_backend_*`; absent records nothing. */
  metrics?: Registry;
}

interface Route {
  index: number;
  pattern: RegExp;
  backend: Backend;
}

/**
 * Builds one backend per rule, each wrapped in the instrumenting decorator, and routes a
 * namespace to the first rule whose regular expression matches it. The expressions are used as
 * written, unanchored: `^library/` matches only namespaces that start with `library/`, while
 * `library` matches any namespace containing it. A bad rule is InvalidArgument ERR_CONFIG_INVALID
 * naming the rule's index; no backend is left open when construction fails.
 */
export function createBackendRouter(options: BackendRouterOptions): BackendRouter {
  const routes: Route[] = [];
  try {
    options.rules.forEach((raw, index) => routes.push(buildRoute(raw, index, options)));
  } catch (err) {
    void closeAll(routes, options.logger);
    throw err;
  }

  function tryRoute(namespace: string): Backend | undefined {
    validateNamespace(namespace);
    return routes.find((r) => r.pattern.test(namespace))?.backend;
  }

  return {
    tryRoute,
    route(namespace: string): Backend {
      const backend = tryRoute(namespace);
      if (!backend) {
        throw new NotFoundError(`no backend rule matches namespace ${JSON.stringify(namespace)}`, { code: 'ERR_BACKEND_NO_ROUTE' });
      }
      return backend;
    },
    close: () => closeAll(routes, options.logger),
  };
}

function buildRoute(raw: BackendRuleConfig, index: number, options: BackendRouterOptions): Route {
  const where = `backend rule ${index}`;
  const kinds = kindsOf(raw ?? {});
  if (kinds.length !== 1) {
    const got = kinds.length === 0 ? 'none' : kinds.join(' and ');
    throw new InvalidArgumentError(`${where}: needs exactly one of ${BACKEND_KINDS.join(', ')} (got ${got})`, { code: 'ERR_CONFIG_INVALID' });
  }
  const kind = kinds[0]!;
  const rule = validateConfig<BackendRuleConfig>(backendRuleSchema, raw, where);
  let pattern: RegExp;
  try {
    pattern = new RegExp(rule.namespace);
  } catch (cause) {
    throw new InvalidArgumentError(`${where}: namespace ${JSON.stringify(rule.namespace)} is not a valid regular expression: ${(cause as Error).message}`, {
      code: 'ERR_CONFIG_INVALID',
      cause,
    });
  }
  const logger = options.logger.child({ backend: kind, rule: index });
  return { index, pattern, backend: instrumentBackend(createKind(kind, rule, options.registries, logger), { metrics: options.metrics }) };
}

function createKind(kind: BackendKind, rule: BackendRuleConfig, registries: RegistriesConfig, logger: Logger): Backend {
  switch (kind) {
    case 'fs':
      return createFsBackend({ ...rule.fs!, logger });
    case 's3':
      return createS3Backend({ ...rule.s3!, logger });
    case 'http':
      return createHttpBackend({ ...rule.http!, logger });
    case 'registry':
      return createRegistryBackend({ registries, logger });
  }
}

async function closeAll(routes: readonly Route[], logger: Logger): Promise<void> {
  const results = await Promise.allSettled(routes.map((r) => r.backend.close()));
  results.forEach((r, i) => {
    if (r.status === 'rejected') logger.warn({ err: r.reason, rule: routes[i]!.index }, 'closing a backend failed');
  });
}
