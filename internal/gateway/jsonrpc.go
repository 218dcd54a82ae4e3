package gateway

import (
	"encoding/json"
	"net/http"
)

// JSON-RPC error codes of the gateway's own answers.
const (
	codeInvalidRequest = -32600 // JSON-RPC: not a valid request
	codeUpstream       = -32603 // JSON-RPC internal error: the upstream failed
	codeBusy           = -32000 // server error range: capacity or staleness
	codeNoSession      = -32001 // server error range: unknown MCP session
)

// writeJSONRPCError answers with a JSON-RPC error object. id is the
// request's id when known (nil otherwise, which JSON-RPC allows when the
// id cannot be determined). message is a fixed sentence: internals go to
// the log, never to the client.
func writeJSONRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int, message string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	body, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
