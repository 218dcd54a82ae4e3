package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"

	"github.com/openxaa/xaa/internal/httpserver"
)

// route is one operation of the API: the ServeMux pattern (relative to
// the base path), what it needs, and what it returns. The mux and the
// OpenAPI document are both built from the route table, and the drift
// test holds them to each other and to the answers the handlers give.
type route struct {
	method, path string
	op           string // OpenAPI operationId
	tag          string
	summary      string
	// public routes need no credential (sign-in, the OpenAPI document).
	public bool
	perm   permission
	query  *querySpec   // nil: no query parameters
	body   reflect.Type // a struct type, decoded strictly from JSON; nil: no body
	resp   reflect.Type // the 200 answer's type
	// mutates marks routes that change state (audited).
	mutates bool
	// handle answers with a value of type resp.
	handle func(ctx context.Context, c *call) (any, error)
	// raw, when set, writes the whole answer itself (streams, redirects).
	raw func(w http.ResponseWriter, r *http.Request, c *call)
	// rawType is the content type of a raw answer, for the document.
	rawType string
	// statuses are documented answers besides 200 and the common errors.
	statuses []int
}

// call is one authenticated request as a handler sees it.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	p    *principal // nil on public routes
	q    *query
	body any // a pointer to the route's body type
}

func (c *call) path(name string) string { return c.r.PathValue(name) }

// serve is every route's wrapper: authenticate, refuse cross-site
// changes, check the role, parse the query and the body, run, answer.
func (s *Server) serve(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c := &call{w: w, r: r}
		if err := s.prepare(w, r, rt, c); err != nil {
			if ae, ok := err.(*apiError); ok && ae.status >= 400 && ae.status < 500 {
				s.logDenied(r, ae)
			}
			s.writeError(w, r, err)
			return
		}
		if rt.raw != nil {
			rt.raw(w, r, c)
			return
		}
		res, err := rt.handle(r.Context(), c)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		_ = httpserver.WriteJSON(w, http.StatusOK, res)
	})
}

// prepare runs every check that comes before the handler, in order. Each
// refusal happens before anything is written to the database, except the
// audit record of a role refusal.
func (s *Server) prepare(w http.ResponseWriter, r *http.Request, rt *route, c *call) error {
	if r.URL.Query().Has("access_token") {
		return badRequest("tokens are accepted only in the Authorization header, never in the URL")
	}
	if !rt.public {
		p, err := s.authenticate(w, r)
		if err != nil {
			return err
		}
		c.p = p
		if unsafeMethod(r.Method) && p.kind == kindHuman {
			if err := s.checkCSRF(r, p); err != nil {
				return err
			}
		}
		if !grants(p.roles, rt.perm) {
			s.auditDenied(r, p, rt)
			return forbidden("your role (%s) may not %s; that needs the %s role", roleNames(p.roles), rt.summaryLower(), roleNames(rolesWith(rt.perm)))
		}
	}
	spec := rt.query
	if spec == nil {
		spec = &querySpec{}
	}
	q, err := spec.parse(r.URL.RawQuery, s.cursors)
	if err != nil {
		return err
	}
	c.q = q
	if rt.body != nil {
		v := reflect.New(rt.body)
		if err := decodeInto(w, r, v.Interface()); err != nil {
			return err
		}
		c.body = v.Interface()
	} else if unsafeMethod(r.Method) && r.ContentLength != 0 {
		return badRequest("this operation takes no request body")
	}
	return nil
}

// decodeInto reads the JSON body strictly (httpserver.DecodeJSON rules)
// into dst, a pointer.
func decodeInto(w http.ResponseWriter, r *http.Request, dst any) error {
	raw, err := httpserver.DecodeJSON[json.RawMessage](w, r, bodyLimit)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return badRequest("the request body does not fit this operation: %s", sentence(err))
	}
	return nil
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

func (rt *route) summaryLower() string {
	if rt.summary == "" {
		return rt.op
	}
	b := []byte(rt.summary)
	if b[0] >= 'A' && b[0] <= 'Z' {
		b[0] += 'a' - 'A'
	}
	return string(b)
}
