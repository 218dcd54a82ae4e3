package admin

import (
	"context"
	"errors"
	"time"

	"github.com/openxaa/xaa/internal/ledger"
	"github.com/openxaa/xaa/internal/store"
)

// Connections: listed and shown from the store, changed through the
// ledger (which keeps their history, audits each change and queues the
// security events that carry a revocation to every authorization server).

var connectionsQuery = &querySpec{list: "connections", sorts: []string{"created", "updated", "expires"}, filters: []param{
	{name: "app", kind: kindID, doc: "only connections of this app (client_id at the IdP)"},
	{name: "resource", kind: kindURI, doc: "only connections to this resource"},
	{name: "status", kind: kindEnum, values: []string{"pending", "approved", "denied", "suspended", "revoked", "expired"}, doc: "only connections in this state"},
}}

func (s *Server) listConnections(ctx context.Context, c *call) (any, error) {
	f := ledger.Filter{
		App: c.q.str("app"), Resource: c.q.str("resource"), Status: store.ConnectionStatus(c.q.str("status")),
		Sort: c.q.sort, Desc: c.q.desc, Limit: c.q.limit,
	}
	if c.q.after != nil {
		// The ledger's own cursor, carried inside ours: only cursors this
		// server sealed reach the ledger.
		f.After = c.q.after.Text
	}
	entries, next, err := s.opts.Ledger.List(ctx, f)
	if err != nil {
		return nil, err
	}
	out := listPage[connectionView]{Items: []connectionView{}}
	for _, e := range entries {
		out.Items = append(out.Items, newConnectionView(e.Connection))
	}
	if next != "" {
		if out.NextCursor, err = s.cursors.seal(cursor{list: connectionsQuery.list, sort: c.q.sort, desc: c.q.desc,
			filter: c.q.filterHash(), pos: position{Text: next}}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type recertifyBody struct {
	// Until is the new recertification date: the connection stops
	// minting after it unless recertified again.
	Until time.Time `json:"until"`
	Note  string    `json:"note,omitempty"`
}

func (recertifyBody) schemaName() string { return "RecertifyRequest" }

// pathConnectionID is the connection id in the path.
func pathConnectionID(c *call) (string, error) {
	id := c.path("id")
	if !validID(id) {
		return "", badRequest("%s is not a connection id", quote(id))
	}
	return id, nil
}

func notFoundConnection(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, ledger.ErrNotFound) {
		return notFound("there is no connection %s", quote(id))
	}
	return err
}
