package admin

import (
	"context"
	"net/http"
	"reflect"

	"github.com/openxaa/xaa/internal/audit"
)

// APIPrefix is where the versioned API lives under the base path.
const APIPrefix = "/api/v1"

// OpenAPIPath is where the OpenAPI document is served under the base path.
const OpenAPIPath = "/api/openapi.json"

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// routeTable lists every operation. Paths are relative to the base path.
func (s *Server) routeTable() []*route {
	v1 := APIPrefix
	get := func(path, op, tag, summary string, perm permission, q *querySpec, resp reflect.Type, h func(context.Context, *call) (any, error)) *route {
		return &route{method: http.MethodGet, path: path, op: op, tag: tag, summary: summary, perm: perm, query: q, resp: resp, handle: h}
	}
	post := func(path, op, tag, summary string, perm permission, body, resp reflect.Type, h func(context.Context, *call) (any, error)) *route {
		return &route{method: http.MethodPost, path: path, op: op, tag: tag, summary: summary, perm: perm, body: body, resp: resp, handle: h, mutates: true}
	}
	conn := typeOf[connectionDetail]()
	rs := []*route{
		{method: http.MethodGet, path: OpenAPIPath, op: "getOpenAPI", tag: "meta", summary: "Get this OpenAPI document",
			public: true, raw: s.serveOpenAPI, rawType: "application/json"},
		{method: http.MethodGet, path: "/auth/login", op: "login", tag: "session", summary: "Sign in at the IdP",
			public: true, query: loginQuery, raw: s.handleLogin, statuses: []int{http.StatusSeeOther}},
		{method: http.MethodGet, path: "/auth/callback", op: "loginCallback", tag: "session", summary: "Finish signing in (the IdP's redirect)",
			public: true, query: callbackQuery, raw: s.handleCallback, rawType: "text/html"},

		get(v1+"/session", "getSession", "session", "Show who is calling, with which roles and CSRF token", permRead, nil, typeOf[sessionView](), s.showSession),
		post(v1+"/session/logout", "logout", "session", "Sign out (or revoke the calling admin token)", permRead, typeOf[emptyBody](), typeOf[doneView](), s.logout),

		get(v1+"/connections", "listConnections", "connections", "List connections", permRead, connectionsQuery, typeOf[listPage[connectionView]](), s.listConnections),
		get(v1+"/connections/{id}", "getConnection", "connections", "Show a connection with its history, enforcement points and security event deliveries", permRead, nil, conn, s.showConnection),
		post(v1+"/connections/{id}/approve", "approveConnection", "connections", "Approve a connection", permApprove, typeOf[noteBody](), conn, s.approveConnection),
		post(v1+"/connections/{id}/deny", "denyConnection", "connections", "Deny a connection", permApprove, typeOf[reasonBody](), conn, s.denyConnection),
		post(v1+"/connections/{id}/suspend", "suspendConnection", "connections", "Suspend a connection", permApprove, typeOf[reasonBody](), conn, s.suspendConnection),
		post(v1+"/connections/{id}/resume", "resumeConnection", "connections", "Resume a suspended connection", permApprove, typeOf[noteBody](), conn, s.resumeConnection),
		post(v1+"/connections/{id}/revoke", "revokeConnection", "connections", "Revoke a connection", permApprove, typeOf[reasonBody](), conn, s.revokeConnection),
		post(v1+"/connections/{id}/recertify", "recertifyConnection", "connections", "Recertify a connection until a new date", permApprove, typeOf[recertifyBody](), conn, s.recertifyConnection),

		get(v1+"/users", "listUsers", "users", "List users", permRead, usersQuery, typeOf[listPage[userView]](), s.listUsers),
		get(v1+"/users/{username}", "getUser", "users", "Show a user", permRead, nil, typeOf[userDetail](), s.showUser),
		post(v1+"/users/{username}/disable", "disableUser", "users", "Disable a user", permManage, typeOf[reasonBody](), typeOf[doneView](), s.disableUser),

		get(v1+"/groups", "listGroups", "groups", "List groups", permRead, groupsQuery, typeOf[listPage[groupView]](), s.listGroups),
		get(v1+"/groups/{name}", "getGroup", "groups", "Show a group and its first members", permRead, nil, typeOf[groupDetail](), s.showGroup),
		post(v1+"/groups/{name}/remove-member", "removeGroupMember", "groups", "Remove a member from a group", permManage, typeOf[removeMemberBody](), typeOf[doneView](), s.removeMember),

		get(v1+"/apps", "listApps", "apps", "List requesting apps", permRead, appsQuery, typeOf[listPage[appView]](), s.listApps),
		get(v1+"/apps/{client_id}", "getApp", "apps", "Show an app, its client ids and connections", permRead, nil, typeOf[appDetail](), s.showApp),
		post(v1+"/apps/{client_id}/revoke", "revokeApp", "apps", "Revoke an app", permManage, typeOf[reasonBody](), typeOf[doneView](), s.revokeApp),

		get(v1+"/resources", "listResources", "resources", "List resources", permRead, resourcesQuery, typeOf[listPage[resourceView]](), s.listResources),
		get(v1+"/resources/{uri}", "getResource", "resources", "Show a resource (its URI percent-encoded as one path segment) and its connections", permRead, nil, typeOf[resourceDetail](), s.showResource),

		get(v1+"/audit/records", "queryAudit", "audit", "Query audit records", permAudit, auditQuery, typeOf[listPage[audit.Record]](), s.queryAudit),
		{method: http.MethodGet, path: v1 + "/audit/export", op: "exportAudit", tag: "audit", summary: "Export audit records as JSON lines",
			perm: permAudit, query: exportQuery, raw: s.exportAudit, rawType: "application/x-ndjson"},
		get(v1+"/audit/verify", "verifyAudit", "audit", "Verify the audit chains", permAudit, verifyQuery, typeOf[verifyView](), s.verifyAudit),
		get(v1+"/audit/trace/{jti}", "traceAudit", "audit", "Trace every record linked to a token id", permAudit, nil, typeOf[traceView](), s.traceAudit),

		get(v1+"/tokens", "listAdminTokens", "tokens", "List admin tokens that have not expired", permManage, nil, typeOf[listPage[tokenView]](), s.listTokens),
		post(v1+"/tokens", "createAdminToken", "tokens", "Create an admin token", permManage, typeOf[createTokenBody](), typeOf[newTokenAnswer](), s.createToken),
		post(v1+"/tokens/{id}/revoke", "revokeAdminToken", "tokens", "Revoke an admin token", permManage, typeOf[reasonBody](), typeOf[doneView](), s.revokeToken),
	}
	return rs
}
