// matrix-js-sdk 41.9.0's OIDC helpers (built on oidc-client-ts, as Element Web used them
// until js-sdk 42), in two steps run as separate node processes, because the login in
// between is done by the Python test:
//
//   node oauth.mjs start  <homeserver> <redirect_uri>   -> {authorization_url, keep: {...}}
//   node oauth.mjs finish <homeserver> <redirect_uri>  (stdin: {keep, callback_url})
//
// These helpers ask for `openid`, so oidc-client-ts requires an ID token in the token
// response (and the SDK checks its iss, aud, nonce and exp): the point of this oracle.
// The homeserver's https OAuth face is trusted through NODE_EXTRA_CA_CERTS (set by the test).

// stdout carries one JSON line only: the SDK's and oidc-client-ts's logging goes to stderr,
// which the test prints on failure.
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
for (const level of ["log", "info", "debug", "trace"]) console[level] = (...a) => console.error(...a);

const [step, baseUrl, redirectUri] = process.argv.slice(2);

// Glue, not behaviour under test: the helpers keep the sign-in state (PKCE verifier, nonce,
// client) in `window.sessionStorage` and rebuild the callback URL from
// `window.location.origin`, as in a browser. node has neither, so a minimal `window` with an
// in-memory Storage; its contents travel from `start` to `finish` in `keep`, as a browser
// tab's sessionStorage outlives the redirect to the OAuth server and back.
class MemoryStorage {
  #items = new Map();
  get length() { return this.#items.size; }
  key(i) { return [...this.#items.keys()][i] ?? null; }
  getItem(k) { return this.#items.has(k) ? this.#items.get(k) : null; }
  setItem(k, v) { this.#items.set(k, String(v)); }
  removeItem(k) { this.#items.delete(k); }
  clear() { this.#items.clear(); }
  dump() { return Object.fromEntries(this.#items); }
}
globalThis.window = {
  sessionStorage: new MemoryStorage(),
  localStorage: new MemoryStorage(),
  location: new URL(redirectUri),
};
// Imported only now, the shim in place (a static import would run first).
const sdk = await import("matrix-js-sdk");

const failure = (err) => ({ message: String(err?.message ?? err), errcode: err?.errcode ?? null });

async function stdinJson() {
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return JSON.parse(text);
}

async function whoami(accessToken) {
  const who = await sdk.createClient({ baseUrl, accessToken }).whoami();
  return { user_id: who.user_id, device_id: who.device_id ?? null };
}

async function start() {
  // Discovery: /auth_metadata, validated, with the issuer's signing keys (jwks_uri).
  const config = await sdk.createClient({ baseUrl }).getAuthMetadata();
  const clientId = await sdk.registerOidcClient(config, {
    clientName: "mxconform js-sdk 41 oracle",
    clientUri: new URL("/", redirectUri).href,
    applicationType: "web",
    redirectUris: [redirectUri],
    contacts: undefined,
    tosUri: undefined,
    policyUri: undefined,
  });
  const nonce = crypto.randomUUID();
  // PKCE (S256), state and nonce by oidc-client-ts; scope `openid` + the Matrix API and a
  // device; query response mode (the helper's default).
  const url = await sdk.generateOidcAuthorizationUrl({
    metadata: config,
    redirectUri,
    clientId,
    homeserverUrl: baseUrl,
    nonce,
  });
  emit({
    authorization_url: url,
    keep: { client_id: clientId, nonce, session_storage: window.sessionStorage.dump() },
  });
}

async function finish() {
  const { keep, callback_url: callback } = await stdinJson();
  for (const [k, v] of Object.entries(keep.session_storage)) window.sessionStorage.setItem(k, v);
  const params = new URL(callback).searchParams;
  const seen = {};
  // The code exchange; oidc-client-ts validates the token response (an ID token is required
  // once `openid` is granted: its subject, nonce) and the SDK the ID token's iss, aud, nonce
  // and exp (validateIdToken): any refusal throws.
  const done = await sdk.completeAuthorizationCodeGrant(params.get("code"), params.get("state"));
  const tokens = done.tokenResponse;
  seen.id_token = Boolean(tokens.id_token);
  // The claims as the SDK decodes them (`idTokenClaims` is oidc-client-ts's profile, from
  // which it filters protocol claims such as `nonce`).
  const claims = tokens.id_token ? sdk.decodeIdToken(tokens.id_token) : {};
  seen.id_token_claims = { iss: claims.iss, sub: claims.sub, aud: claims.aud, nonce: claims.nonce };
  seen.profile_sub = done.idTokenClaims?.sub ?? null;
  seen.issuer = done.oidcClientSettings.issuer;
  seen.client_id = done.oidcClientSettings.clientId;
  seen.homeserver_url = done.homeserverUrl;
  seen.scope = tokens.scope;
  seen.has_refresh_token = Boolean(tokens.refresh_token);
  seen.whoami = await whoami(tokens.access_token);
  // The refresh as Element Web did it: OidcTokenRefresher (oidc-client-ts's refresh grant,
  // which checks any new ID token's subject against the first one's claims).
  const device = /:device:(\S+)/.exec(tokens.scope ?? "")?.[1] ?? seen.whoami.device_id;
  const refresher = new sdk.OidcTokenRefresher(
    seen.issuer, seen.client_id, redirectUri, device, done.idTokenClaims,
  );
  const renewed = await refresher.doRefreshAccessToken(tokens.refresh_token);
  seen.refreshed = renewed.accessToken !== tokens.access_token;
  seen.whoami_after_refresh = await whoami(renewed.accessToken);
  emit(seen);
}

try {
  await (step === "start" ? start() : finish());
} catch (err) {
  console.error(err);
  emit({ failure: failure(err) });
}
// Done: exit once stdout is flushed, not when the SDK's pending timers fire (its discovery
// fetch holds a 5-second timeout signal that would keep node alive that long).
process.stdout.write("", () => process.exit(0));
