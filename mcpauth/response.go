package mcpauth

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// interceptor is the ResponseWriter the MCP server writes to. It binds a
// session id the server hands out to the caller, and, when the request
// listed tools, filters the response: an application/json body is
// buffered and rewritten at the end; a text/event-stream is rewritten event
// by event as it flows.
type interceptor struct {
	w      http.ResponseWriter
	filter *listFilter // nil: pass the body through untouched
	// onHeader runs once before the status is sent; false refuses the
	// response (the session id is someone else's).
	onHeader func(status int, h http.Header) bool

	wroteHeader bool
	status      int
	mode        writeMode
	buf         bytes.Buffer
	overflow    bool
	sse         *sseRewriter
}

type writeMode int

const (
	modePass writeMode = iota
	modeJSON
	modeSSE
	modeRefused
)

var errRefused = errors.New("mcpauth: response refused")

func (iw *interceptor) Header() http.Header { return iw.w.Header() }

// Unwrap lets http.ResponseController reach deadlines and full duplex.
func (iw *interceptor) Unwrap() http.ResponseWriter { return iw.w }

func (iw *interceptor) WriteHeader(status int) {
	if iw.wroteHeader {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		iw.w.WriteHeader(status) // informational: more headers follow
		return
	}
	iw.wroteHeader = true
	iw.status = status
	h := iw.w.Header()
	if iw.onHeader != nil && !iw.onHeader(status, h) {
		iw.mode = modeRefused
		for k := range h {
			delete(h, k)
		}
		writeRPC(iw.w, http.StatusBadGateway, newRPCError(nil, codeInternalError,
			"the MCP server returned a session that belongs to someone else"))
		return
	}
	if iw.filter == nil {
		iw.w.WriteHeader(status)
		return
	}
	if mediaType(h.Get("Content-Type")) == "text/event-stream" {
		iw.mode = modeSSE
		h.Del("Content-Length")
		iw.sse = newSSERewriter(iw.filter, iw.w, iw.flushUnderlying)
		iw.w.WriteHeader(status)
		return
	}
	iw.mode = modeJSON // held until finish
}

func (iw *interceptor) Write(p []byte) (int, error) {
	if !iw.wroteHeader {
		iw.WriteHeader(http.StatusOK)
	}
	switch iw.mode {
	case modeRefused:
		return 0, errRefused
	case modeSSE:
		return iw.sse.Write(p)
	case modeJSON:
		if iw.overflow || iw.buf.Len()+len(p) > maxFilterBytes {
			iw.overflow = true
			return 0, errEventTooLarge
		}
		return iw.buf.Write(p)
	}
	return iw.w.Write(p)
}

// Flush implements http.Flusher. A buffered JSON response is not flushed:
// it is written whole by finish.
func (iw *interceptor) Flush() {
	if !iw.wroteHeader {
		iw.WriteHeader(http.StatusOK)
	}
	if iw.mode == modePass || iw.mode == modeSSE {
		iw.flushUnderlying()
	}
}

func (iw *interceptor) flushUnderlying() {
	_ = http.NewResponseController(iw.w).Flush()
}

// finish completes the response after the MCP server returned.
func (iw *interceptor) finish() {
	switch iw.mode {
	case modeSSE:
		iw.sse.finish()
	case modeJSON:
		iw.finishJSON()
	}
}

// finishJSON filters a buffered body. A body that cannot be read strictly
// is replaced by a 502 unless it is plainly not JSON (an error page).
func (iw *interceptor) finishJSON() {
	h := iw.w.Header()
	body := iw.buf.Bytes()
	fail := func() {
		for k := range h {
			delete(h, k)
		}
		writeRPC(iw.w, http.StatusBadGateway, newRPCError(nil, codeInternalError,
			"the MCP server's tools/list response could not be checked"))
	}
	if iw.overflow {
		fail()
		return
	}
	out := body
	if len(bytes.TrimSpace(body)) > 0 {
		filtered, _, err := iw.filter.filterPayload(body)
		switch {
		case err == nil:
			out = filtered
		case jsonLike(h.Get("Content-Type")):
			fail()
			return
		}
	}
	if len(out) != len(body) || h.Get("Content-Length") != "" {
		h.Set("Content-Length", strconv.Itoa(len(out)))
	}
	iw.w.WriteHeader(iw.status)
	_, _ = iw.w.Write(out)
}

// jsonLike reports whether a Content-Type may carry JSON a client would
// read: application/json, any +json type, or none at all.
func jsonLike(ct string) bool {
	mt := mediaType(ct)
	return mt == "" || mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func mediaType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		// Unparseable: compare what precedes any parameter.
		mt, _, _ = strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return mt
}
