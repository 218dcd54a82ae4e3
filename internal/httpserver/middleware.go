package httpserver

import (
	"io"
	"net/http"
)

// Middleware wraps a handler. It is an alias so that plain
// func(http.Handler) http.Handler values need no conversion.
type Middleware = func(http.Handler) http.Handler

// Chain wraps h in mw; mw[0] ends up outermost, so it sees the request first
// and the response last.
func Chain(h http.Handler, mw ...Middleware) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// recorder remembers the final status and the body size. The middleware of
// this package share one recorder per request (see recorderFor) so the
// chain allocates it once.
type recorder struct {
	http.ResponseWriter
	status int // final (>= 200) status; 0 until the header is written
	bytes  int64
}

// recorderFor returns w itself when an outer middleware of this package
// already wrapped it, and a new recorder otherwise.
func recorderFor(w http.ResponseWriter) *recorder {
	if rec, ok := w.(*recorder); ok {
		return rec
	}
	return &recorder{ResponseWriter: w}
}

func (rec *recorder) wroteHeader() bool { return rec.status != 0 }

func (rec *recorder) WriteHeader(code int) {
	// 1xx responses (103 Early Hints) are informational and may precede the
	// real status.
	if rec.status == 0 && code >= 200 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(p)
	rec.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the sendfile fast path of the underlying writer for
// io.Copy (http.ServeContent, file servers).
func (rec *recorder) ReadFrom(src io.Reader) (int64, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := rec.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{rec.ResponseWriter}, src)
	}
	rec.bytes += n
	return n, err
}

// Flush is implemented directly because streaming handlers (the gateway's
// SSE responses) still type-assert http.Flusher rather than use
// http.ResponseController.
func (rec *recorder) Flush() {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	_ = http.NewResponseController(rec.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (write
// deadlines for long streams, Hijack, full duplex).
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// writerOnly hides any ReadFrom method so io.Copy cannot recurse.
type writerOnly struct{ io.Writer }

// innermost peels every Unwrap layer off w. http.MaxBytesReader needs the
// server's own writer: only that one can mark the connection for closing
// once a client sends too much.
func innermost(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}
