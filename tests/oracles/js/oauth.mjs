// matrix-js-sdk 43's OAuth 2.0 API (the `OAuth2` class) as a client lives it, in two steps
// run as separate node processes, because the login in between is done by the Python test:
//
//   node oauth.mjs start  <homeserver> <redirect_uri>   -> {authorization_url, keep: {...}}
//   node oauth.mjs finish <homeserver>  (stdin: {keep, callback_url})  -> what the SDK saw
//
// js-sdk 43 holds the PKCE verifier, client ID and device ID in `OAuth2.context` (no browser
// storage), so `keep` is that context plus the state; a real client persists the same.
// The homeserver's https OAuth face is trusted through NODE_EXTRA_CA_CERTS (set by the test).
import * as sdk from "matrix-js-sdk";

// stdout carries one JSON line only: the SDK's own request logging goes to stderr, which
// the test prints on failure.
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
for (const level of ["log", "info", "debug", "trace"]) console[level] = (...a) => console.error(...a);

const [step, baseUrl, redirectUri] = process.argv.slice(2);
const REVOCATION_GRACE_MS = 10_000; // as the harness's default revocation_grace_s

const failure = (err) => ({
  message: String(err?.message ?? err),
  errcode: err?.errcode ?? null,
  error: err?.error ?? null, // an OAuth2HTTPError's RFC 6749 error code
  status: err?.httpStatus ?? null,
});

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
  // Discovery: GET /_matrix/client/v1/auth_metadata, validated by the SDK.
  const metadata = await sdk.createClient({ baseUrl }).getAuthMetadata();
  // Dynamic client registration, as Element Web registers (a web client, its own origin).
  const clientId = await sdk.OAuth2.registerClient(metadata, {
    client_name: "mxconform js-sdk 43 oracle",
    client_uri: new URL("/", redirectUri).href,
    application_type: "web",
    redirect_uris: [redirectUri],
  });
  const oauth = new sdk.OAuth2(metadata, { clientId }); // makes the device ID and PKCE verifier
  const state = crypto.randomUUID(); // any unique opaque value (the SDK leaves it to the app)
  const url = await oauth.generateAuthorizationCodeGrantUrl(state, redirectUri); // fragment mode
  emit({ authorization_url: url, keep: { metadata, state, context: oauth.context } });
}

async function finish() {
  const { keep, callback_url: callback } = await stdinJson();
  const seen = {};
  const oauth = new sdk.OAuth2(keep.metadata, keep.context);
  // The code comes back in the fragment (the SDK's default response mode) or the query.
  const back = new URL(callback);
  const params = new URLSearchParams(back.hash ? back.hash.slice(1) : back.search);
  seen.state_echoed = params.get("state") === keep.state;
  const tokens = await oauth.completeAuthorizationCodeGrant(params.get("code"), redirectUri);
  seen.token = {
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    expires_in: tokens.expires_in ?? null,
    has_refresh_token: Boolean(tokens.refresh_token),
  };
  seen.device_id_asked = oauth.context.deviceId;
  seen.whoami = await whoami(tokens.access_token);
  const renewed = await oauth.performRefreshTokenGrant(tokens.refresh_token);
  seen.refreshed = renewed.access_token !== tokens.access_token;
  seen.whoami_after_refresh = await whoami(renewed.access_token);
  // Logout as the SDK offers it: revocation (RFC 7009) of the access token, which ends the
  // pair: the refresh token is then refused, and the homeserver refuses the access token
  // (it may cache introspection for a while, so it is polled).
  await oauth.revokeToken(renewed.access_token, "access_token");
  seen.revoked = "ok";
  try {
    await oauth.performRefreshTokenGrant(renewed.refresh_token);
    seen.refresh_after_revocation = "accepted";
  } catch (err) {
    seen.refresh_after_revocation = err?.error ?? String(err?.message ?? err);
  }
  const started = Date.now();
  for (;;) {
    try {
      await whoami(renewed.access_token);
      seen.whoami_after_revocation = "accepted";
    } catch (err) {
      seen.whoami_after_revocation = err?.errcode ?? String(err?.httpStatus ?? err);
      break;
    }
    if (Date.now() - started > REVOCATION_GRACE_MS) break;
    await new Promise((done) => setTimeout(done, 500));
  }
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
