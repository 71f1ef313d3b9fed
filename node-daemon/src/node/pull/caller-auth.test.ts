import { describe, expect, it } from 'vitest';
import type { AuthConfig } from '@krill/proto';
import { callerCredentials } from './caller-auth.js';

const auth = (a: Partial<AuthConfig>): AuthConfig => ({ username: '', password: '', auth: '', serverAddress: '', identityToken: '', registryToken: '', ...a });

describe('callerCredentials (containerd ParseAuth)', () => {
  it('takes username and password, the identity token as the password, or the decoded auth field', () => {
    expect(callerCredentials(auth({ username: 'u', password: 'p' }), 'r.io')).toEqual({ username: 'u', password: 'p' });
    expect(callerCredentials(auth({ identityToken: 'tok' }), 'r.io')).toEqual({ username: '', password: 'tok' });
    expect(callerCredentials(auth({ auth: Buffer.from('bob:pa:ss').toString('base64') }), 'r.io')).toEqual({ username: 'bob', password: 'pa:ss' });
    expect(callerCredentials(auth({}), 'r.io')).toBeUndefined();
    expect(callerCredentials(null, 'r.io')).toBeUndefined();
  });

  it('uses none when serverAddress names another registry host', () => {
    expect(callerCredentials(auth({ username: 'u', password: 'p', serverAddress: 'other.io' }), 'r.io')).toBeUndefined();
    expect(callerCredentials(auth({ username: 'u', password: 'p', serverAddress: 'https://r.io:5000' }), 'r.io:5000')).toEqual({ username: 'u', password: 'p' });
    expect(callerCredentials(auth({ username: 'u', password: 'p', serverAddress: 'r.io' }), 'r.io')).toEqual({ username: 'u', password: 'p' });
  });

  it('rejects an auth field that is not user:password, without echoing it', () => {
    expect(() => callerCredentials(auth({ auth: Buffer.from('secretvalue').toString('base64') }), 'r.io')).toThrow(/auth.auth must be base64/);
    try {
      callerCredentials(auth({ auth: Buffer.from('secretvalue').toString('base64') }), 'r.io');
    } catch (err) {
      expect((err as Error).message).not.toContain('secretvalue');
    }
  });
});
