package admin

import (
	"context"
	"errors"
	"slices"

	"github.com/openxaa/xaa/internal/store"
)

// Read-only directory endpoints: users, groups, apps and resources.

// Sort keys as the API names them, mapped to the store's.
var (
	usersQuery = &querySpec{list: "users", sorts: []string{"username", "created", "updated"}, filters: []param{
		{name: "disabled", kind: kindBool, doc: "only disabled (true) or enabled (false) users"},
		{name: "group", kind: kindGroup, doc: "only members of this group"},
	}}
	groupsQuery = &querySpec{list: "groups", sorts: []string{"name", "created", "updated"}}
	appsQuery   = &querySpec{list: "apps", sorts: []string{"client_id", "name", "created"}, filters: []param{
		{name: "disabled", kind: kindBool, doc: "only disabled (true) or enabled (false) apps"},
	}}
	resourcesQuery = &querySpec{list: "resources", sorts: []string{"uri", "name", "created", "updated"}, filters: []param{
		{name: "auth_server", kind: kindURI, doc: "only resources this authorization server governs"},
	}}
)

var storeSorts = map[string]string{
	"username": store.SortName, "name": store.SortName, "client_id": store.SortID, "uri": store.SortID,
	"created": store.SortCreated, "updated": store.SortUpdated,
}

// storePage asks the store for one row more than the page holds, to know
// whether another page follows.
func storePage(q *query, after func(p *position) *store.Position) store.Page {
	p := store.Page{Sort: storeSorts[q.sort], Desc: q.desc, Limit: q.limit + 1}
	if q.after != nil {
		p.After = after(q.after)
	}
	return p
}

// pageOf turns rows (up to limit+1 of them) into a page and the cursor of
// the next.
func pageOf[T, V any](s *Server, spec *querySpec, q *query, rows []T, view func(T) V, pos func(T) position) (listPage[V], error) {
	out := listPage[V]{Items: []V{}}
	more := len(rows) > q.limit
	if more {
		rows = rows[:q.limit]
	}
	for _, r := range rows {
		out.Items = append(out.Items, view(r))
	}
	if more {
		next, err := s.cursors.seal(cursor{list: spec.list, sort: q.sort, desc: q.desc, filter: q.filterHash(), pos: pos(rows[len(rows)-1])})
		if err != nil {
			return listPage[V]{}, err
		}
		out.NextCursor = next
	}
	return out, nil
}

// textPosition and timePosition are a position as the store takes it.
func textPosition(p *position) *store.Position { return &store.Position{Text: p.Text, ID: p.ID} }
func timePosition(p *position) *store.Position { return &store.Position{Time: p.Time, ID: p.ID} }

func positionFor(sort string) func(*position) *store.Position {
	if sort == "created" || sort == "updated" {
		return timePosition
	}
	return textPosition
}

func (s *Server) listUsers(ctx context.Context, c *call) (any, error) {
	rows, err := s.opts.Store.ListUsers(ctx, store.UserQuery{
		Disabled: c.q.tristate("disabled"), Group: c.q.str("group"), Page: storePage(c.q, positionFor(c.q.sort)),
	})
	if err != nil {
		return nil, err
	}
	return pageOf(s, usersQuery, c.q, rows, newUserView, func(u store.User) position {
		switch c.q.sort {
		case "created":
			return position{Time: u.CreatedAt, ID: u.ID}
		case "updated":
			return position{Time: u.UpdatedAt, ID: u.ID}
		}
		return position{Text: store.UsernameKey(u.Username), ID: u.ID}
	})
}

// pathUser loads the user named in the path.
func (s *Server) pathUser(ctx context.Context, c *call) (store.User, error) {
	name := c.path("username")
	if store.CheckUsername(name) != nil {
		return store.User{}, badRequest("%s is not a username", quote(name))
	}
	u, err := s.opts.Store.GetUserByUsername(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, notFound("there is no user %s", quote(name))
	}
	return u, err
}

func (s *Server) showUser(ctx context.Context, c *call) (any, error) {
	u, err := s.pathUser(ctx, c)
	if err != nil {
		return nil, err
	}
	groups, err := s.opts.Store.UserGroups(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	roles := []string{}
	for _, r := range rolesOf(groups, s.roles) {
		roles = append(roles, string(r))
	}
	if groups == nil {
		groups = []string{}
	}
	return userDetail{User: newUserView(u), Groups: groups, AdminRoles: roles}, nil
}

func (s *Server) listGroups(ctx context.Context, c *call) (any, error) {
	rows, err := s.opts.Store.ListGroupsPage(ctx, store.GroupQuery{Page: storePage(c.q, positionFor(c.q.sort))})
	if err != nil {
		return nil, err
	}
	return pageOf(s, groupsQuery, c.q, rows, newGroupView, func(g store.Group) position {
		switch c.q.sort {
		case "created":
			return position{Time: g.CreatedAt, ID: g.Name}
		case "updated":
			return position{Time: g.UpdatedAt, ID: g.Name}
		}
		return position{Text: g.Name, ID: g.Name}
	})
}

// maxShownMembers bounds the members a group's detail lists.
const maxShownMembers = 100

func (s *Server) pathGroup(ctx context.Context, c *call) (store.Group, error) {
	name := c.path("name")
	if store.CheckGroupName(name) != nil {
		return store.Group{}, badRequest("%s is not a group name", quote(name))
	}
	// The store has no single-group read; the first page positioned just
	// before the name holds it if it exists.
	rows, err := s.opts.Store.ListGroupsPage(ctx, store.GroupQuery{Page: store.Page{
		Sort: store.SortName, Limit: 1, After: &store.Position{Text: name, ID: ""},
	}})
	if err != nil {
		return store.Group{}, err
	}
	if len(rows) == 0 || rows[0].Name != name {
		return store.Group{}, notFound("there is no group %s", quote(name))
	}
	return rows[0], nil
}

func (s *Server) showGroup(ctx context.Context, c *call) (any, error) {
	g, err := s.pathGroup(ctx, c)
	if err != nil {
		return nil, err
	}
	members, err := s.opts.Store.ListUsers(ctx, store.UserQuery{Group: g.Name, Page: store.Page{Sort: store.SortName, Limit: maxShownMembers + 1}})
	if err != nil {
		return nil, err
	}
	d := groupDetail{Group: newGroupView(g), Members: []memberView{}, AdminRole: string(s.roles[g.Name])}
	if len(members) > maxShownMembers {
		members, d.MembersTruncated = members[:maxShownMembers], true
	}
	for _, u := range members {
		d.Members = append(d.Members, memberView{ID: u.ID, Username: u.Username, Disabled: u.Disabled})
	}
	return d, nil
}

func (s *Server) listApps(ctx context.Context, c *call) (any, error) {
	rows, err := s.opts.Store.ListApps(ctx, store.AppQuery{Disabled: c.q.tristate("disabled"), Page: storePage(c.q, positionFor(c.q.sort))})
	if err != nil {
		return nil, err
	}
	return pageOf(s, appsQuery, c.q, rows, newAppView, func(a store.Client) position {
		switch c.q.sort {
		case "created":
			return position{Time: a.CreatedAt, ID: a.ID}
		case "name":
			return position{Text: a.Name, ID: a.ID}
		}
		return position{Text: a.ID, ID: a.ID}
	})
}

func (s *Server) pathApp(ctx context.Context, c *call) (store.Client, error) {
	id := c.path("client_id")
	if !validID(id) {
		return store.Client{}, badRequest("%s is not a client_id", quote(id))
	}
	a, err := s.opts.Store.GetClient(ctx, store.RealmIdP, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Client{}, notFound("there is no app %s", quote(id))
	}
	return a, err
}

func (s *Server) showApp(ctx context.Context, c *call) (any, error) {
	a, err := s.pathApp(ctx, c)
	if err != nil {
		return nil, err
	}
	ids, err := s.opts.Store.AppClientIDs(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	d := appDetail{App: newAppView(a), ClientIDs: []clientIDView{}}
	issuers := make([]string, 0, len(ids))
	for iss := range ids {
		issuers = append(issuers, iss)
	}
	slices.Sort(issuers)
	for _, iss := range issuers {
		d.ClientIDs = append(d.ClientIDs, clientIDView{AuthServer: iss, ClientID: ids[iss]})
	}
	if d.Connections, err = s.connectionsOf(ctx, store.ConnectionFilter{AppID: a.ID, IncludeRevoked: true}); err != nil {
		return nil, err
	}
	return d, nil
}

func (s *Server) connectionsOf(ctx context.Context, f store.ConnectionFilter) ([]connectionView, error) {
	cs, err := s.opts.Store.ListConnections(ctx, f)
	if err != nil {
		return nil, err
	}
	out := []connectionView{}
	for _, c := range cs {
		out = append(out, newConnectionView(c))
	}
	return out, nil
}

func (s *Server) listResources(ctx context.Context, c *call) (any, error) {
	rows, err := s.opts.Store.ListResources(ctx, store.ResourceQuery{AuthServer: c.q.str("auth_server"), Page: storePage(c.q, positionFor(c.q.sort))})
	if err != nil {
		return nil, err
	}
	return pageOf(s, resourcesQuery, c.q, rows, newResourceView, func(r store.Resource) position {
		switch c.q.sort {
		case "created":
			return position{Time: r.CreatedAt, ID: r.URI}
		case "updated":
			return position{Time: r.UpdatedAt, ID: r.URI}
		case "name":
			return position{Text: r.Name, ID: r.URI}
		}
		return position{Text: r.URI, ID: r.URI}
	})
}

func (s *Server) showResource(ctx context.Context, c *call) (any, error) {
	raw := c.path("uri")
	uri, err := store.CanonicalResource(raw)
	if err != nil {
		return nil, badRequest("%s is not a resource URI; percent-encode it as one path segment", quote(raw))
	}
	r, err := s.opts.Store.GetResource(ctx, uri)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("there is no resource %s", quote(uri))
	}
	if err != nil {
		return nil, err
	}
	conns, err := s.connectionsOf(ctx, store.ConnectionFilter{ResourceURI: uri, IncludeRevoked: true})
	if err != nil {
		return nil, err
	}
	return resourceDetail{Resource: newResourceView(r), Connections: conns}, nil
}
