package mcpauth

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// MCP methods the middleware governs.
const (
	methodToolsCall = "tools/call"
	methodToolsList = "tools/list"
)

// JSON-RPC error codes the middleware answers with.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeInvalidParams  = -32602
	codeInternalError  = -32603
	// codeSessionNotFound is the server-error code MCP SDKs use for an
	// unknown session.
	codeSessionNotFound = -32001
)

// rpcMessage is what the middleware needs from one JSON-RPC message of a
// request body.
type rpcMessage struct {
	id     []byte // raw id; nil when absent
	method string // "" when absent (a response from the client)
	// For tools/call: the tool name, and whether params held exactly one
	// string name (toolOK false means the call names no usable tool).
	tool   string
	toolOK bool
}

// bodyError is a request body the middleware refuses before anything is
// forwarded.
type bodyError struct {
	code    int
	message string
}

// inspectBody parses a POST body as one JSON-RPC message or a batch. It is
// strict where a lenient reading could differ from the MCP server's: the
// body must be valid UTF-8 and valid JSON, every message an object, and no
// object the middleware reads may repeat a member name, even in another
// case. Arguments of calls are not inspected.
func inspectBody(body []byte) ([]rpcMessage, bool, *bodyError) {
	if len(body) == 0 || !utf8.Valid(body) || !json.Valid(body) {
		return nil, false, &bodyError{codeParseError, "parse error: the body is not a JSON-RPC message"}
	}
	i := skipSpace(body, 0)
	var elems [][]byte
	batch := body[i] == '['
	if batch {
		var err error
		if elems, err = scanArray(body); err != nil || len(elems) == 0 {
			return nil, true, &bodyError{codeInvalidRequest, "invalid request: an empty or malformed batch"}
		}
	} else {
		elems = [][]byte{body}
	}
	msgs := make([]rpcMessage, 0, len(elems))
	for _, e := range elems {
		m, err := inspectMessage(e)
		if err != nil {
			return nil, batch, err
		}
		msgs = append(msgs, m)
	}
	return msgs, batch, nil
}

func inspectMessage(data []byte) (rpcMessage, *bodyError) {
	var m rpcMessage
	obj, err := scanObject(data)
	if err != nil {
		return m, &bodyError{codeInvalidRequest, "invalid request: every message must be a JSON object with unique member names"}
	}
	m.id, _ = obj.get(keyID)
	if raw, ok := obj.get(keyMethod); ok {
		s, ok := decodeString(raw)
		if !ok {
			return m, &bodyError{codeInvalidRequest, "invalid request: method must be a string"}
		}
		m.method = s
	}
	if m.method != methodToolsCall {
		return m, nil
	}
	params, ok := obj.get(keyParams)
	if !ok {
		return m, nil
	}
	p, err := scanObject(params)
	if err != nil {
		return m, nil
	}
	if raw, ok := p.get(keyName); ok {
		m.tool, m.toolOK = decodeString(raw)
	}
	return m, nil
}

// idKey maps a JSON-RPC id to a comparison key that a response's id maps
// to as well, however the server re-encodes it: strings by value, numbers
// by float64 value (1, 1.0 and 1e0 are one key; collisions of huge numbers
// only filter more).
func idKey(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		s, ok := decodeString(raw)
		if !ok {
			return "x" + string(raw)
		}
		return "s" + s
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(f, 0) {
			return "x" + string(raw)
		}
		if f == 0 {
			f = 0 // -0
		}
		return "n" + strconv.FormatFloat(f, 'g', -1, 64)
	}
	return "x" + string(raw)
}
