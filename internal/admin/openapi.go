package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/audit"
)

// The OpenAPI 3.1 document is generated from the route table: paths and
// methods from the routes, parameters from their query specs and path
// wildcards, schemas by reflection from the request and answer types. The
// drift test walks the registered ServeMux patterns and the served
// document and holds the handlers' real answers to the schemas.

// schemaNamer gives a type its name in components.schemas.
type schemaNamer interface{ schemaName() string }

// foreignNames names types of other packages that appear in answers.
var foreignNames = map[reflect.Type]string{
	reflect.TypeFor[audit.Record](): "AuditRecord",
}

func schemaNameOf(v any) string { return schemaNameOfType(reflect.TypeOf(v)) }

func schemaNameOfType(t reflect.Type) string {
	if n, ok := foreignNames[t]; ok {
		return n
	}
	if n, ok := reflect.Zero(t).Interface().(schemaNamer); ok {
		return n.schemaName()
	}
	return t.Name()
}

type schemaGen struct {
	comps map[string]any
	types map[string]reflect.Type
}

var timeType = reflect.TypeFor[time.Time]()

// schema returns the schema of t, registering named structs as components.
func (g *schemaGen) schema(t reflect.Type) (map[string]any, error) {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}, nil
	case t.Kind() == reflect.Pointer:
		return g.schema(t.Elem())
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}, nil
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}, nil
	case reflect.Slice:
		items, err := g.schema(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("admin: openapi: map key of %s is not a string", t)
		}
		vals, err := g.schema(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": vals}, nil
	case reflect.Struct:
		name := schemaNameOfType(t)
		if name == "" {
			return nil, fmt.Errorf("admin: openapi: anonymous struct %s", t)
		}
		ref := map[string]any{"$ref": "#/components/schemas/" + name}
		if prev, ok := g.types[name]; ok {
			if prev != t {
				return nil, fmt.Errorf("admin: openapi: two types named %s", name)
			}
			return ref, nil
		}
		g.types[name] = t
		props := map[string]any{}
		required := []string{}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			jname, opts, _ := strings.Cut(tag, ",")
			if jname == "-" || jname == "" || f.Anonymous {
				return nil, fmt.Errorf("admin: openapi: field %s.%s needs a json name", name, f.Name)
			}
			fs, err := g.schema(f.Type)
			if err != nil {
				return nil, err
			}
			props[jname] = fs
			if !slices.Contains(strings.Split(opts, ","), "omitempty") {
				required = append(required, jname)
			}
		}
		g.comps[name] = map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
		return ref, nil
	}
	return nil, fmt.Errorf("admin: openapi: no schema for %s", t)
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

func (p param) schema() map[string]any {
	switch p.kind {
	case kindBool:
		return map[string]any{"type": "boolean"}
	case kindEnum:
		return map[string]any{"type": "string", "enum": p.values}
	case kindTime:
		return map[string]any{"type": "string", "format": "date-time"}
	case kindURI:
		return map[string]any{"type": "string", "format": "uri"}
	}
	return map[string]any{"type": "string", "maxLength": maxValueLen}
}

func jsonContent(schema any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

func errorResponse(desc string) map[string]any {
	return map[string]any{"description": desc, "content": jsonContent(map[string]any{"$ref": "#/components/schemas/Error"})}
}

func (s *Server) openAPIDocument() ([]byte, error) {
	g := &schemaGen{comps: map[string]any{}, types: map[string]reflect.Type{}}
	if _, err := g.schema(reflect.TypeFor[errorBody]()); err != nil {
		return nil, err
	}
	paths := map[string]any{}
	for _, rt := range s.routes {
		op := map[string]any{"operationId": rt.op, "summary": rt.summary, "tags": []string{rt.tag}}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if q := rt.query; q != nil {
			for _, p := range q.filters {
				params = append(params, map[string]any{"name": p.name, "in": "query", "required": false, "description": p.doc, "schema": p.schema()})
			}
			if q.list != "" {
				if len(q.sorts) > 0 {
					params = append(params, map[string]any{"name": paramSort, "in": "query", "required": false,
						"description": "sort key; a leading - reverses the order", "schema": map[string]any{"type": "string", "enum": strings.Split(q.sortChoices(), ", ")}})
				}
				params = append(params,
					map[string]any{"name": paramLimit, "in": "query", "required": false, "description": "page size",
						"schema": map[string]any{"type": "integer", "minimum": 1, "maximum": maxLimit, "default": defaultLimit}},
					map[string]any{"name": paramCursor, "in": "query", "required": false,
						"description": "next_cursor of the previous page, with the same filters and sort", "schema": map[string]any{"type": "string", "maxLength": maxCursorLen}})
			}
		}
		if !rt.public && unsafeMethod(rt.method) {
			params = append(params, map[string]any{"name": CSRFHeader, "in": "header", "required": false,
				"description": "the session's CSRF token (GET " + APIPrefix + "/session); required with the session cookie, not with a bearer token",
				"schema":      map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.body != nil {
			bs, err := g.schema(rt.body)
			if err != nil {
				return nil, err
			}
			op["requestBody"] = map[string]any{"required": true, "content": jsonContent(bs)}
		}
		responses := map[string]any{}
		switch {
		case rt.resp != nil:
			rs, err := g.schema(rt.resp)
			if err != nil {
				return nil, err
			}
			responses["200"] = map[string]any{"description": "success", "content": jsonContent(rs)}
		case rt.rawType != "":
			responses["200"] = map[string]any{"description": "success", "content": map[string]any{rt.rawType: map[string]any{}}}
		}
		for _, st := range rt.statuses {
			responses[strconv.Itoa(st)] = map[string]any{"description": http.StatusText(st)}
		}
		responses["400"] = errorResponse("invalid request: unknown or malformed parameter, forged cursor, bad body")
		if !rt.public {
			responses["401"] = errorResponse("no valid session or admin token")
			responses["403"] = errorResponse("the role may not do this, or a cross-site change was refused")
			responses["503"] = errorResponse("the database did not answer")
			op["x-openxaa-roles"] = roleList(rolesWith(rt.perm))
		} else {
			op["security"] = []any{}
		}
		if strings.Contains(rt.path, "{") || rt.public {
			responses["404"] = errorResponse("not found")
		}
		if rt.body != nil {
			responses["409"] = errorResponse("the change conflicts with the current state")
			responses["413"] = errorResponse("the body is too large")
			responses["415"] = errorResponse("the body is not JSON")
		}
		op["responses"] = responses
		item, _ := paths[rt.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.path] = item
		}
		item[strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "OpenXAA admin API",
			"version": "1",
			"description": "Connections, the directory and the audit trail of an OpenXAA deployment. " +
				"Humans sign in at the IdP (GET /auth/login) and send the session cookie plus X-CSRF-Token on changes; " +
				"automation sends an admin token (xaa admin token create) as a Bearer token. Roles: " + roleNames(Roles) + ".",
		},
		"servers": []any{map[string]any{"url": s.origin + s.basePath}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": g.comps,
			"securitySchemes": map[string]any{
				"bearer":  map[string]any{"type": "http", "scheme": "bearer", "description": "an admin token (xaa_at_...)"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": s.cookieName()},
			},
		},
		"security": []any{map[string]any{"bearer": []any{}}, map[string]any{"session": []any{}}},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func roleList(rs []Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func (s *Server) serveOpenAPI(w http.ResponseWriter, _ *http.Request, _ *call) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.openapi)
}
