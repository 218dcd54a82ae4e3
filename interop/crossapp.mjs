// Calls tools of an MCP server behind an OpenXAA gateway with the official
// MCP TypeScript SDK v2 (@modelcontextprotocol/client, pinned in
// package.json): StreamableHTTPClientTransport with the SDK's
// CrossAppAccessProvider. The SDK does the whole client side of Cross App
// Access itself: the 401 challenge, RFC 9728 protected-resource metadata,
// RFC 8414 authorization-server metadata, the jwt-bearer grant, and on a
// 403 insufficient_scope a new authorization for the union of scopes. The
// one thing an application supplies is the ID-JAG: the provider's
// assertion callback trades the user's ID token for one at the IdP with
// the SDK's requestJwtAuthorizationGrant (RFC 8693), asking for the scope
// the SDK passes in.
//
// Prints one JSON line per tool call ({"tool","ok","text"|"error"}) and a
// last line {"done":true,"assertions":[{"scope","granted"}],"challenges":
// [{"status","www_authenticate"}]}: every ID-JAG the SDK asked for and every
// 401/403 the MCP endpoint answered. Exits 1 only when the client could not
// connect.
//
// Environment (secrets travel in the environment, never argv):
//   XAA_MCP_URL             the MCP endpoint (the gateway route)
//   XAA_ID_TOKEN            the user's ID token from the IdP
//   XAA_IDP_TOKEN_ENDPOINT  the IdP's token endpoint
//   XAA_IDP_CLIENT_ID       the app at the IdP ...
//   XAA_IDP_CLIENT_SECRET   ... and its secret (sent as client_secret_post)
//   XAA_AS_ISSUER           the authorization server the app is registered at
//                           (the SDK's expectedIssuer: credentials go nowhere else)
//   XAA_AS_CLIENT_ID        the app at that authorization server ...
//   XAA_AS_CLIENT_SECRET    ... and its secret (client_secret_basic)
//   XAA_CALLS               JSON array of {"tool": name, "arguments": {...}}
//   XAA_AS_METADATA_SHIM    "1": add authorization_endpoint and
//                           response_types_supported to authorization-server
//                           metadata that lacks them (see recordingFetch);
//                           the summary line lists what was added ("shimmed")
import {
  Client,
  CrossAppAccessProvider,
  StreamableHTTPClientTransport,
  requestJwtAuthorizationGrant,
} from "@modelcontextprotocol/client";

function env(name) {
  const v = process.env[name] ?? "";
  if (v === "") throw new Error(`${name} is not set`);
  return v;
}

const print = (o) => process.stdout.write(JSON.stringify(o) + "\n");

async function main() {
  const assertions = [];
  const provider = new CrossAppAccessProvider({
    assertion: async (ctx) => {
      const res = await requestJwtAuthorizationGrant({
        tokenEndpoint: env("XAA_IDP_TOKEN_ENDPOINT"),
        audience: ctx.authorizationServerUrl,
        resource: ctx.resourceUrl,
        idToken: env("XAA_ID_TOKEN"),
        clientId: env("XAA_IDP_CLIENT_ID"),
        clientSecret: env("XAA_IDP_CLIENT_SECRET"),
        scope: ctx.scope,
        fetchFn: ctx.fetchFn,
      });
      assertions.push({ scope: ctx.scope ?? "", granted: res.scope ?? "" });
      return res.jwtAuthGrant;
    },
    clientId: env("XAA_AS_CLIENT_ID"),
    clientSecret: env("XAA_AS_CLIENT_SECRET"),
    expectedIssuer: env("XAA_AS_ISSUER"),
  });
  // Every 401/403 the MCP endpoint answers, as the SDK receives it.
  const challenges = [];
  const shimmed = [];
  const shim = process.env.XAA_AS_METADATA_SHIM === "1";
  const recordingFetch = async (input, init) => {
    let res = await fetch(input, init);
    if (res.status === 401 || res.status === 403) {
      challenges.push({ status: res.status, www_authenticate: res.headers.get("www-authenticate") ?? "" });
    }
    const path = new URL(String(input instanceof Request ? input.url : input)).pathname;
    if (shim && res.ok && path.startsWith("/.well-known/oauth-authorization-server")) {
      // XAA_AS_METADATA_SHIM=1: the SDK's metadata schema (2.4.0) requires
      // authorization_endpoint and response_types_supported, which a
      // jwt-bearer-only authorization server has no use for. Fill in only
      // what is missing; the SDK never calls either in this flow.
      const md = await res.json();
      const added = [];
      if (md.authorization_endpoint === undefined) {
        md.authorization_endpoint = new URL("authorize-not-supported", md.issuer + "/").href;
        added.push("authorization_endpoint");
      }
      if (md.response_types_supported === undefined) {
        md.response_types_supported = [];
        added.push("response_types_supported");
      }
      if (added.length > 0) shimmed.push({ url: String(input instanceof Request ? input.url : input), added });
      const headers = new Headers(res.headers);
      headers.delete("content-length");
      headers.delete("content-encoding");
      res = new Response(JSON.stringify(md), { status: res.status, headers });
    }
    return res;
  };
  const transport = new StreamableHTTPClientTransport(new URL(env("XAA_MCP_URL")), {
    authProvider: provider,
    fetch: recordingFetch,
  });
  const client = new Client({ name: "openxaa-interop-ts", version: "0.0.0" });
  await client.connect(transport);
  for (const call of JSON.parse(env("XAA_CALLS"))) {
    try {
      const res = await client.callTool({ name: call.tool, arguments: call.arguments ?? {} });
      const text = (res.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
      print({ tool: call.tool, ok: !res.isError, text });
    } catch (err) {
      print({ tool: call.tool, ok: false, error: String(err?.message ?? err) });
    }
  }
  await client.close();
  print({ done: true, assertions, challenges, shimmed });
}

main().catch((err) => {
  process.stderr.write(`crossapp.mjs: ${err?.stack ?? err}\n`);
  process.exit(1);
});
