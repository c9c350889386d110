// One legacy session as matrix-js-sdk lives it: log in, whoami, log out, then whether a
// client still holding the token is let in. Prints one JSON line of what it saw.
import * as sdk from "matrix-js-sdk";

const [baseUrl, userId, password] = process.argv.slice(2);
const seen = {};
const client = sdk.createClient({ baseUrl });
try {
  const login = await client.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: userId },
    password,
    initial_device_display_name: "js-sdk oracle",
  });
  seen.login = { user_id: login.user_id, device_id: login.device_id ?? null };
  const token = login.access_token;
  const authed = sdk.createClient({ baseUrl, accessToken: token, userId: login.user_id });
  const who = await authed.whoami();
  seen.whoami = { user_id: who.user_id, device_id: who.device_id ?? null };
  await authed.logout();
  seen.logout = "ok";
  const after = sdk.createClient({ baseUrl, accessToken: token, userId: login.user_id });
  try {
    await after.whoami();
    seen.after_logout = "accepted";
  } catch (err) {
    seen.after_logout = err.errcode ?? String(err.httpStatus ?? err);
  }
} catch (err) {
  seen.error = { errcode: err.errcode ?? null, status: err.httpStatus ?? null, message: String(err.message ?? err) };
}
console.log(JSON.stringify(seen));
