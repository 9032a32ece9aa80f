// A real OpenID Provider on loopback for the staff sign-in tests: panva's oidc-provider
// (certified by the OpenID Foundation), with its own development login pages.
//
//   node server.mjs CONFIG.json
//
// CONFIG names the issuer and port, the clients (the app under test) and the accounts
// (subject -> claims). What is a stand-in here, and only here:
// - the login page accepts any password for a listed account (oidc-provider's
//   development interactions); an unlisted login is an unknown subject to the app;
// - an account with "amr" in the config signs in with those methods (a real provider
//   would have asked for its second factor);
// - consent is given at once for the configured client (a first-party app).
// Each start makes a new RSA signing key with a new key id: a restart is a key rotation.
// With "logout_needs_id_token_hint", sign-out without the ID token is refused, as Okta
// refuses it.
// Prints "ready" once it listens; stopped by its PID (SIGTERM).
//
// With "smart" in the config, the same provider is also the stand-in for an EHR's SMART
// App Launch 2.2 side (the EHR itself is not real; the authorization server is):
// - it serves `.well-known/smart-configuration` under each of its FHIR bases;
// - it takes the `launch` and `aud` parameters, and refuses an `aud` that is not its own
//   FHIR base (sending the app an invalid_request error);
// - its token response carries the launch's context (patient, encounter, fhirContext),
//   the way an EHR's does;
// - its FHIR base answers GET Patient/<id> and Encounter/<id> for a valid access token,
//   from the resources in the config.
import { randomBytes, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts || {};
const smart = config.smart; // { fhir_base, bases, scopes, launches, resources }

// WebCrypto, not generateKeyPairSync + export({ format: 'jwk' }): on node 20 that pair
// now and then deadlocks at start (a garbage collection during the export runs the key
// job's destructor, which waits on the lock the export holds; seen in gdb, 1 start in 200).
const { privateKey } = await webcrypto.subtle.generateKey(
  {
    name: 'RSASSA-PKCS1-v1_5',
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: 'SHA-256',
  },
  true,
  ['sign', 'verify'],
);
const { key_ops: _ops, ext: _ext, ...exported } = await webcrypto.subtle.exportKey('jwk', privateKey);
const signingKey = {
  ...exported,
  kid: randomBytes(8).toString('hex'),
  use: 'sig',
  alg: 'RS256',
};

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    // amr in the ID token, as providers that report the second factor put it.
    openid: ['sub', 'amr', 'acr'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  extraParams: ['launch', 'aud'],
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    ...(smart ? {
      resourceIndicators: {
        enabled: true,
        defaultResource: () => smart.fhir_base,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: smart.scopes,
          audience: smart.fhir_base,
          accessTokenFormat: 'opaque',
        }),
      },
    } : {}),
  },
  pkce: { required: () => true },
  async findAccount(_ctx, id) {
    const account = accounts[id];
    if (!account) {
      // Any other login still signs in at the provider: a person the clinic never linked.
      return { accountId: id, async claims() { return { sub: id }; } };
    }
    return {
      accountId: id,
      async claims() {
        const { amr: _amr, ...claims } = account;
        return { sub: id, ...claims };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const found = await ctx.oidc.provider.Grant.find(grantId);
      // The same browser may have signed in as someone else before.
      if (found && found.accountId === ctx.oidc.session.accountId) {
        return found;
      }
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    grant.addOIDCClaims(['sub', 'email', 'email_verified', 'name', 'amr', 'acr']);
    if (smart) {
      grant.addResourceScope(smart.fhir_base, smart.scopes);
    }
    await grant.save();
    return grant;
  },
});

// The stand-in for the provider's second factor: the methods this account used.
const finished = provider.interactionFinished.bind(provider);
provider.interactionFinished = (req, res, result, options) => {
  const amr = result?.login && accounts[result.login.accountId]?.amr;
  if (amr) {
    result.login.amr = amr;
  }
  return finished(req, res, result, options);
};

if (smart) {
  const launchOfCode = new Map();
  const redirectWithError = (ctx, description) => {
    const client = config.clients.find((c) => c.client_id === ctx.query.client_id);
    if (!client || !client.redirect_uris.includes(ctx.query.redirect_uri)) {
      ctx.status = 400;
      ctx.body = description;
      return;
    }
    const back = new URL(ctx.query.redirect_uri);
    back.searchParams.set('error', 'invalid_request');
    back.searchParams.set('error_description', description);
    if (ctx.query.state) back.searchParams.set('state', ctx.query.state);
    back.searchParams.set('iss', config.issuer);
    ctx.redirect(back.href);
  };
  provider.use(async (ctx, next) => {
    const fhir = ctx.path.match(/^\/([a-z0-9]+)\/(.*)$/);
    if (fhir && smart.bases.includes(fhir[1])) {
      const base = `${config.issuer}/${fhir[1]}`;
      if (fhir[2] === '.well-known/smart-configuration') {
        ctx.body = {
          issuer: config.issuer,
          jwks_uri: `${config.issuer}/jwks`,
          authorization_endpoint: `${config.issuer}/auth`,
          token_endpoint: `${config.issuer}/token`,
          grant_types_supported: ['authorization_code'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['client_secret_basic'],
          scopes_supported: smart.scopes.split(' '),
          response_types_supported: ['code'],
          capabilities: ['launch-ehr', 'client-confidential-symmetric',
            'context-ehr-patient', 'context-ehr-encounter'],
        };
        return;
      }
      const bearer = (ctx.get('authorization').match(/^Bearer (.+)$/) || [])[1];
      const token = bearer && await provider.AccessToken.find(bearer);
      if (!token || base !== smart.fhir_base) {
        ctx.status = 401;
        ctx.body = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] };
        return;
      }
      const resource = smart.resources[fhir[2]];
      ctx.type = 'application/fhir+json';
      ctx.status = resource ? 200 : 404;
      ctx.body = resource || { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] };
      return;
    }
    if (ctx.path === '/auth' && ctx.method === 'GET' && 'launch' in ctx.query) {
      if (ctx.query.aud !== smart.fhir_base) {
        redirectWithError(ctx, 'aud is not this EHR');
        return;
      }
      if (!(ctx.query.launch in smart.launches)) {
        redirectWithError(ctx, 'unknown launch');
        return;
      }
    }
    await next();
    // Which launch each authorization code was issued for, for its token response.
    const route = ctx.oidc?.route;
    if ((route === 'authorization' || route === 'resume') && ctx.oidc.params?.launch) {
      const location = ctx.response.get('location');
      const code = location && new URL(location, config.issuer).searchParams.get('code');
      if (code) launchOfCode.set(code, ctx.oidc.params.launch);
    }
    if (route === 'token' && ctx.status === 200 && ctx.body?.access_token) {
      const launch = launchOfCode.get(ctx.oidc.params.code);
      if (launch) Object.assign(ctx.body, smart.launches[launch]);
    }
  });
}

// With "logout_needs_id_token_hint": the end-session endpoint refuses a request without
// id_token_hint, as Okta's does (oidc-provider itself checks any hint it is given).
if (config.logout_needs_id_token_hint) {
  provider.use(async (ctx, next) => {
    if (ctx.path === '/session/end' && !ctx.query.id_token_hint) {
      ctx.status = 400;
      ctx.body = 'invalid_request: id_token_hint is required';
      return;
    }
    await next();
  });
}

provider.proxy = false;
provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
// At once: a browser's kept-alive connections must not hold a restart up.
process.on('SIGTERM', () => process.exit(0));
