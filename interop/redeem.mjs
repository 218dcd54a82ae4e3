// Redeems an ID-JAG at an OpenXAA authorization server with the official
// MCP TypeScript SDK's exchangeJwtAuthGrant (@modelcontextprotocol/client,
// pinned in package.json), so "our AS redeems ID-JAGs" is checked by code
// nobody on the team wrote. Prints the SDK's result as one JSON line on
// stdout; exits 1 on any failure, with the SDK's error on stderr.
//
// Environment (secrets come from the environment, never argv, which other
// users of the machine can read):
//   XAA_AS_ISSUER       the AS issuer: its token endpoint is found with the
//                       SDK's discoverAuthorizationServerMetadata (RFC 8414,
//                       with the SDK's issuer check). As of 2.4.0 its schema
//                       requires authorization_endpoint and
//                       response_types_supported, which a jwt-bearer-only
//                       AS need not publish ...
//   XAA_TOKEN_ENDPOINT  ... or the token endpoint itself (skips discovery)
//   XAA_CLIENT_ID       the client registered at the AS
//   XAA_CLIENT_SECRET   its secret
//   XAA_AUTH_METHOD     client_secret_basic (default) | client_secret_post
//   XAA_ID_JAG          the ID-JAG to redeem
//   XAA_RESOURCE        optional: the resource the access token must be for.
//                       exchangeJwtAuthGrant sends no resource parameter, so
//                       the AS takes it from the ID-JAG; this only checks
//                       the (unverified) aud of the access token it returns.
import { discoverAuthorizationServerMetadata, exchangeJwtAuthGrant } from "@modelcontextprotocol/client";

function env(name, { required = true } = {}) {
  const v = process.env[name] ?? "";
  if (required && v === "") throw new Error(`${name} is not set`);
  return v;
}

async function main() {
  let tokenEndpoint = env("XAA_TOKEN_ENDPOINT", { required: false });
  if (tokenEndpoint === "") {
    const issuer = env("XAA_AS_ISSUER");
    const md = await discoverAuthorizationServerMetadata(issuer);
    if (!md?.token_endpoint) throw new Error(`no authorization server metadata with a token_endpoint for ${issuer}`);
    tokenEndpoint = md.token_endpoint;
  }
  const authMethod = env("XAA_AUTH_METHOD", { required: false }) || "client_secret_basic";
  if (authMethod !== "client_secret_basic" && authMethod !== "client_secret_post") {
    throw new Error(`XAA_AUTH_METHOD must be client_secret_basic or client_secret_post, not ${JSON.stringify(authMethod)}`);
  }
  const tokens = await exchangeJwtAuthGrant({
    tokenEndpoint,
    jwtAuthGrant: env("XAA_ID_JAG"),
    clientId: env("XAA_CLIENT_ID"),
    clientSecret: env("XAA_CLIENT_SECRET"),
    authMethod,
  });
  if (typeof tokens.access_token !== "string" || tokens.access_token === "") throw new Error("no access_token in the response");
  if (tokens.token_type?.toLowerCase() !== "bearer") throw new Error(`token_type ${JSON.stringify(tokens.token_type)}, want Bearer`);
  const resource = env("XAA_RESOURCE", { required: false });
  if (resource !== "") {
    const payload = JSON.parse(Buffer.from(tokens.access_token.split(".")[1] ?? "", "base64url").toString("utf8"));
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!aud.includes(resource)) throw new Error(`access token aud ${JSON.stringify(payload.aud)} does not name ${resource}`);
  }
  process.stdout.write(JSON.stringify({ token_endpoint: tokenEndpoint, auth_method: authMethod, ...tokens }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`redeem.mjs: ${err?.message ?? err}\n`);
  process.exit(1);
});
