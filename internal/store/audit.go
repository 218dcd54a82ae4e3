package store

// AuditHead is the tip of one audit stream: its last Seq and that event's
// Hash. Signed checkpoints of heads, kept outside the database, are what
// make a truncated stream detectable.
type AuditHead struct {
	Stream string
	Seq    int64
	Hash   string
}
